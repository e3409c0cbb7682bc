"""verify_archive finds every kind of tampering, naming the first bad seq or checkpoint.

The attacker here is a database superuser with triggers switched off: privileges and
triggers do not stop them, only the hashes and the signatures do.
"""

import functools
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from archive import ledger
from archive.ledger import Fact, chain_link
from archive.merkle import CompactRange, leaf_hash
from archive.verify import verify_ledger
from tests.archive.conftest import SIZE


@pytest.fixture(params=[1, 2], ids=["one process", "two workers"])
def verify(request):
    """Every tampering test runs in one process and with parallel workers."""
    return functools.partial(verify_ledger, workers=request.param)


def first(report):
    problem = report.first_problem
    return (problem.seq, problem.checkpoint)


def test_it_finds_an_untouched_archive_intact(archive, verify):
    report = verify()
    assert report.intact, report.problems
    assert (report.entries, report.checkpoints, report.contents) == (SIZE, 3, SIZE)


def test_it_checks_the_stored_merkle_nodes(archive, verify):
    assert verify().nodes == 2 + 1  # two 256-leaf subtrees and their 512-leaf parent


def test_it_finds_a_changed_envelope_byte(attacker, verify):
    attacker.execute(
        "UPDATE archive_ledgerentry SET envelope = overlay(envelope placing 'X' from 3) "
        "WHERE seq = 42"
    )
    report = verify()
    assert first(report) == (42, None)
    assert "leaf_hash" in report.first_problem.what


def test_it_finds_a_changed_link(attacker, verify):
    attacker.execute("UPDATE archive_ledgerentry SET link = sha256(link) WHERE seq = 42")
    assert first(verify()) == (42, None)


def test_it_finds_a_consistently_rehashed_envelope_by_its_link(attacker, verify):
    envelope = b'{"forged":true}'
    attacker.execute(
        "UPDATE archive_ledgerentry SET envelope = %s, leaf_hash = %s WHERE seq = 42",
        [envelope, leaf_hash(envelope)],
    )
    report = verify()
    assert first(report) == (42, None)
    assert "link" in report.first_problem.what


def test_it_finds_a_changed_checkpoint_root(attacker, verify):
    attacker.execute("UPDATE archive_checkpoint SET root = sha256(root) WHERE tree_size = 300")
    report = verify()
    assert first(report) == (None, 300)


def test_it_finds_a_changed_checkpoint_note(attacker, verify):
    attacker.execute(
        "UPDATE archive_checkpoint SET note = replace(note, 'time 20', 'time 19') "
        "WHERE tree_size = 300"
    )
    report = verify()
    assert first(report) == (None, 300)
    assert "note does not verify" in report.first_problem.what


def test_it_finds_changed_content(attacker, verify):
    attacker.execute(
        "UPDATE archive_content SET content = 'message 999' WHERE seq = 10 AND name = 'body'"
    )
    report = verify()
    assert first(report) == (10, None)
    assert "commitment" in report.first_problem.what


def test_it_skips_content_checks_when_asked(attacker, verify):
    attacker.execute("UPDATE archive_content SET content = 'x' WHERE seq = 10")
    assert verify(contents=False).intact


def test_it_finds_a_deleted_entry(attacker, verify):
    attacker.execute("DELETE FROM archive_content WHERE seq = 42")
    attacker.execute("DELETE FROM archive_ledgerentry WHERE seq = 42")
    report = verify()
    assert first(report) == (42, None)
    assert "missing" in report.first_problem.what


def test_it_finds_an_entry_inserted_in_the_middle(attacker, verify):
    attacker.execute("DELETE FROM archive_content WHERE seq >= 42")
    attacker.execute(
        "UPDATE archive_ledgerentry SET seq = seq + 100001 WHERE seq >= 42; "
        "UPDATE archive_ledgerentry SET seq = seq - 100000 WHERE seq > 100000"
    )
    envelope = b'{"inserted":true}'
    attacker.execute(
        "INSERT INTO archive_ledgerentry SELECT 42, 'x', %s, %s, sha256(link), sealed_at"
        " FROM archive_ledgerentry WHERE seq = 43",
        [envelope, leaf_hash(envelope)],
    )
    assert first(verify()) == (42, None)


def test_it_finds_an_entry_appended_behind_the_head(attacker, verify):
    sealed = timezone.now()
    envelope = ledger.build_envelope(SIZE, Fact("test.message"), sealed, {})
    (last_link,) = attacker.execute(
        "SELECT link FROM archive_ledgerentry WHERE seq = %s", [SIZE - 1]
    ).fetchone()
    attacker.execute(
        "INSERT INTO archive_ledgerentry VALUES (%s, 'test.message', %s, %s, %s, %s)",
        [SIZE, envelope, leaf_hash(envelope), chain_link(last_link, leaf_hash(envelope)), sealed],
    )
    report = verify()
    assert not report.intact
    assert "chain head" in report.first_problem.what


def test_it_finds_two_swapped_entries(attacker, verify):
    attacker.execute(
        "UPDATE archive_ledgerentry SET seq = CASE seq WHEN 42 THEN 100000 ELSE 42 END"
        " WHERE seq IN (42, 43); UPDATE archive_ledgerentry SET seq = 43 WHERE seq = 100000"
    )
    assert first(verify(contents=False)) == (42, None)


def test_it_finds_a_truncated_ledger(attacker, verify):
    attacker.execute("TRUNCATE archive_ledgerentry, archive_content CASCADE")
    report = verify()
    assert first(report) == (None, 100)
    assert "holds 0" in report.first_problem.what


def test_it_finds_a_whole_chain_rewritten_consistently(attacker, verify):
    """Rewrite every entry with valid hashes and links (and fix the head): only the signed
    checkpoints still remember the original, and the first one covering the change says so."""
    rows = attacker.execute("SELECT seq, envelope FROM archive_ledgerentry ORDER BY seq").fetchall()
    link, frontier = bytes(32), CompactRange()
    for seq, envelope in rows:
        envelope = bytes(envelope).replace(b'"n":5,', b'"n":6,') if seq == 5 else bytes(envelope)
        leaf = leaf_hash(envelope)
        link = chain_link(link, leaf)
        for level, index, node in frontier.append(leaf):
            attacker.execute(
                "UPDATE archive_merklenode SET hash = %s WHERE level = %s AND index = %s",
                [node, level, index],
            )
        attacker.execute(
            "UPDATE archive_ledgerentry SET envelope = %s, leaf_hash = %s, link = %s"
            " WHERE seq = %s",
            [envelope, leaf, link, seq],
        )
    attacker.execute(
        "UPDATE archive_chainhead SET link = %s, frontier = %s", [link, frontier.to_bytes()]
    )
    report = verify(contents=False)
    assert report.first_problem.checkpoint == 100
    assert "root does not match" in report.first_problem.what


def test_it_finds_a_changed_merkle_node(attacker, verify):
    attacker.execute(
        "UPDATE archive_merklenode SET hash = sha256(hash) WHERE level = 8 AND index = 1"
    )
    report = verify()
    assert not report.intact
    assert "node 8/1" in report.first_problem.what


def test_it_exits_1_naming_the_first_bad_seq(attacker, capsys):
    attacker.execute("UPDATE archive_ledgerentry SET link = sha256(link) WHERE seq = 7")
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_archive", "--json", "--no-record")
    assert exit_info.value.code == 1
    assert json.loads(capsys.readouterr().out)["first_bad_seq"] == 7


def test_it_exits_0_and_records_an_intact_run(archive, capsys):
    call_command("verify_archive")
    assert "intact: 600 entries" in capsys.readouterr().out
    from archive.models import VerificationRun

    run = VerificationRun.objects.get()
    assert run.intact and run.entries == SIZE and run.trigger == "command"


def test_it_checks_checkpoints_saved_outside_the_database(attacker, tmp_path, verify):
    """Deleting the newest entries *and* the checkpoint that covered them passes the database's
    own checks; the auditor's saved copy of that checkpoint still catches it."""
    (saved,) = attacker.execute(
        "SELECT note FROM archive_checkpoint WHERE tree_size = 600"
    ).fetchone()
    attacker.execute("DELETE FROM archive_checkpoint WHERE tree_size = 600")
    attacker.execute("DELETE FROM archive_content WHERE seq >= 300")
    attacker.execute("DELETE FROM archive_ledgerentry WHERE seq >= 300")
    attacker.execute("DELETE FROM archive_merklenode WHERE level = 9 OR index >= 1")
    (link,) = attacker.execute("SELECT link FROM archive_ledgerentry WHERE seq = 299").fetchone()
    frontier = CompactRange()
    for (leaf,) in attacker.execute("SELECT leaf_hash FROM archive_ledgerentry ORDER BY seq"):
        frontier.append(bytes(leaf))
    attacker.execute(
        "UPDATE archive_chainhead SET size = 300, link = %s, frontier = %s",
        [link, frontier.to_bytes()],
    )
    assert verify().intact
    report = verify(saved_notes=[saved])
    assert first(report) == (None, 600)
    note_file = tmp_path / "checkpoint-600.txt"
    note_file.write_text(saved)
    with pytest.raises(SystemExit):
        call_command("verify_archive", "--against", str(note_file), "--no-record")


def test_it_rejects_a_saved_checkpoint_that_is_not_ours(archive, verify):
    report = verify(saved_notes=["clientwindow.local/ledger\n1\nAAAA\n\n— x AAAA\n"])
    assert "saved checkpoint does not verify" in report.first_problem.what


def test_it_finds_a_checkpoint_time_that_differs_from_its_note(attacker, verify):
    attacker.execute(
        "UPDATE archive_checkpoint SET created_at = created_at - interval '1 day'"
        " WHERE tree_size = 100"
    )
    assert first(verify()) == (None, 100)


def test_it_splits_large_ledgers_across_workers(archive, monkeypatch):
    monkeypatch.setattr("archive.verify.CHUNK_MAX_ENTRIES", 128)
    report = verify_ledger(workers=2)
    assert report.intact and report.workers == 2
    assert (report.entries, report.contents, report.checkpoints) == (SIZE, SIZE, 3)


def test_it_finds_a_deleted_entry_at_a_chunk_boundary(attacker, monkeypatch):
    monkeypatch.setattr("archive.verify.CHUNK_MAX_ENTRIES", 100)  # chunks [0,100), [100,200)…
    attacker.execute("DELETE FROM archive_content WHERE seq = 99")
    attacker.execute("DELETE FROM archive_ledgerentry WHERE seq = 99")
    assert first(verify_ledger(workers=2)) == (99, None)


def test_it_verifies_in_one_process_inside_a_transaction(archive):
    from django.db import transaction

    with transaction.atomic():
        assert verify_ledger(workers=2).workers == 1


def test_it_uses_every_cpu_for_a_large_ledger_but_not_inside_a_daemon(monkeypatch):
    from archive import verify as module

    monkeypatch.setattr(module.os, "cpu_count", lambda: 4)
    assert module.auto_workers(10) == 1
    assert module.auto_workers(module.PARALLEL_MIN_ENTRIES) == 4
    monkeypatch.setattr(module.multiprocessing.current_process(), "daemon", True)
    assert module.auto_workers(module.PARALLEL_MIN_ENTRIES) == 1
