"""verify_archive finds every kind of tampering, naming the first bad seq or checkpoint.

The attacker here is a database superuser with triggers switched off: privileges and
triggers do not stop them, only the hashes and the signatures do.
"""

import functools
import json
import re

import orjson
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import ledger
from archive.chain_check import SliceResult, _check_envelope, _fast_body
from archive.checkpoints import create_checkpoint
from archive.envelope import NAME_RE, canonical_json
from archive.ledger import Fact, chain_link
from archive.merkle import CompactRange, InMemoryTree, leaf_hash, range_cut, subtree_levels
from archive.models import Checkpoint, LedgerEntry, VerificationRun, VerifiedCheckpoint
from archive.verify import NotVerified, record_run, verify_ledger
from tests.archive.conftest import SIZE


@pytest.fixture(
    params=[(1, 16), (2, 16), (2, 6)],
    ids=["one process", "two workers", "two workers, 64-entry slices"],
)
def verify(request, monkeypatch):
    """Every tampering test runs in one process and with parallel workers, and with slices
    small enough that checkpoints, stored nodes and the tampering fall inside and across them."""
    workers, level = request.param
    monkeypatch.setattr("archive.verify.SLICE_LEVEL", level)
    return functools.partial(verify_ledger, workers=workers)


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


@pytest.mark.parametrize("name", ["other", "bödy", "commit.body", ""])
def test_it_finds_content_moved_under_another_name(attacker, verify, name):
    """A name the envelope commits to nothing under, including one that is not ASCII (no
    commitment tag can be made of it): reported at its entry, not a crash."""
    attacker.execute("UPDATE archive_content SET name = %s WHERE seq = 10", [name])
    report = verify()
    assert first(report) == (10, None)
    assert f"content {name!r} does not match its commitment" == report.first_problem.what


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
    monkeypatch.setattr("archive.verify.SLICE_LEVEL", 7)
    report = verify_ledger(workers=2)
    assert report.intact and report.workers == 2
    assert (report.entries, report.contents, report.checkpoints) == (SIZE, SIZE, 3)


@pytest.mark.parametrize("seq", [127, 128, 255, 256])
def test_it_finds_a_deleted_entry_at_a_slice_boundary(attacker, monkeypatch, seq):
    monkeypatch.setattr("archive.verify.SLICE_LEVEL", 7)  # slices [0,128), [128,256)…
    attacker.execute("DELETE FROM archive_content WHERE seq = %s", [seq])
    attacker.execute("DELETE FROM archive_ledgerentry WHERE seq = %s", [seq])
    assert first(verify_ledger(workers=2)) == (seq, None)


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


# --------------------------------------------------------------------------- slices agree

TAMPERINGS = {
    "envelope": "UPDATE archive_ledgerentry SET envelope = overlay(envelope placing 'X' from 3)"
    " WHERE seq = %(seq)s",
    "link": "UPDATE archive_ledgerentry SET link = sha256(link) WHERE seq = %(seq)s",
    "leaf_hash": "UPDATE archive_ledgerentry SET leaf_hash = sha256(leaf_hash) WHERE seq = %(seq)s",
    "content": "UPDATE archive_content SET content = 'x' WHERE seq = %(seq)s",
}


def tampered(attacker, how, seq):
    """Apply one tampering; the returned callable undoes it (the superuser can)."""
    row = attacker.execute(
        "SELECT e.envelope, e.leaf_hash, e.link, c.content FROM archive_ledgerentry e"
        " JOIN archive_content c USING (seq) WHERE seq = %s",
        [seq],
    ).fetchone()
    attacker.execute(TAMPERINGS[how], {"seq": seq})

    def undo():
        attacker.execute(
            "UPDATE archive_ledgerentry SET envelope = %s, leaf_hash = %s, link = %s"
            " WHERE seq = %s",
            [*row[:3], seq],
        )
        attacker.execute("UPDATE archive_content SET content = %s WHERE seq = %s", [row[3], seq])

    return undo


def problems(report):
    return [(p.seq, p.checkpoint, p.what) for p in report.problems]


SLICE_EDGES = st.sampled_from([0, 31, 32, 63, 64, 99, 100, 127, 128, 255, 256, 299, 300, 599])


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seq=st.integers(0, SIZE - 1) | SLICE_EDGES, how=st.sampled_from(sorted(TAMPERINGS)))
def test_it_finds_the_same_problems_in_one_process_and_in_slices(attacker, monkeypatch, seq, how):
    """Wherever the tampering lands (slice edges included), 32-entry slices on two workers
    report exactly what one process reading the whole ledger reports."""
    undo = tampered(attacker, how, seq)
    try:
        serial = verify_ledger(workers=1)
        monkeypatch.setattr("archive.verify.SLICE_LEVEL", 5)
        parallel = verify_ledger(workers=2)
        monkeypatch.setattr("archive.verify.SLICE_LEVEL", 16)
    finally:
        undo()
    assert first(serial) == (seq, None)
    assert problems(parallel) == problems(serial)


def test_it_keeps_the_leaf_hashes_of_every_slice_in_the_root(archive):
    """The slices' subtrees join into the same roots as appending every leaf (CompactRange)."""
    leaves = [
        bytes(leaf) for (leaf,) in LedgerEntry.objects.order_by("seq").values_list("leaf_hash")
    ]
    for size in (1, 255, 256, 257, 511, 512, 600):
        cut = subtree_levels(b"".join(leaves[:512]), 9)
        frontier = CompactRange()
        for level, node in range_cut(cut, min(size, 512)):
            frontier.append_node(level, node)
        for leaf in leaves[512:size]:
            frontier.append(leaf)
        assert frontier.root() == InMemoryTree(leaves).root(size)


# --------------------------------------------------------------------------- incremental

NEW = 200  # entries appended after the verified checkpoint at 600


def grow(count=NEW, *, checkpoint=True):
    """`count` more messages after the archive's 600, then (by default) a checkpoint."""
    done = LedgerEntry.objects.count()
    facts = [
        Fact("test.message", {"n": n}, {"body": f"message {n}".encode()})
        for n in range(done, done + count)
    ]
    for start in range(0, count, 50):
        ledger.append(facts[start : start + 50])
    if checkpoint:
        create_checkpoint()


@pytest.fixture
def verified(archive):
    """The 600-entry archive verified in full (recorded at its checkpoint 600), then 200 more
    entries and a checkpoint at 800."""
    record_run(verify_ledger(), trigger="command")
    grow()


def test_it_refuses_an_incremental_run_before_any_verification(archive):
    with pytest.raises(NotVerified):
        verify_ledger(incremental=True)


def test_it_refuses_an_incremental_run_after_an_unrecorded_or_partial_one(archive):
    verify_ledger()  # not recorded
    record_run(verify_ledger(contents=False), trigger="command")  # contents not checked
    with pytest.raises(NotVerified):
        verify_ledger(incremental=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_it_checks_only_the_new_entries_incrementally(verified, workers, monkeypatch):
    monkeypatch.setattr("archive.verify.SLICE_LEVEL", 6)  # [600,640) unaligned, then aligned
    report = verify_ledger(incremental=True, workers=workers)
    assert report.intact, report.problems
    assert (report.mode, report.from_seq, report.entries, report.contents) == (
        "incremental",
        600,
        NEW,
        NEW,
    )
    assert report.checkpoints == 2  # the one it starts from, and 800
    assert report.verified.tree_size == SIZE + NEW


def test_the_hourly_task_waits_for_a_full_run_then_checks_only_what_is_new(archive, attacker):
    from archive.tasks import verify_new_task

    assert verify_new_task() is None  # nothing verified to start from: nothing recorded
    assert not VerificationRun.objects.exists()
    record_run(verify_ledger(), trigger="schedule")
    grow()
    assert verify_new_task() is True
    run = VerificationRun.objects.latest("id")
    assert (run.mode, run.from_seq, run.entries) == ("incremental", SIZE, NEW)
    grow(checkpoint=False)
    attacker.execute(
        "UPDATE archive_content SET content = 'changed' WHERE seq = %s AND name = 'body'",
        [SIZE + NEW + 5],
    )
    assert verify_new_task() is False  # found within the hour, and recorded
    assert VerificationRun.objects.latest("id").first_bad_seq == SIZE + NEW + 5


def test_it_records_where_the_next_incremental_run_starts(verified):
    run = record_run(verify_ledger(incremental=True), trigger="schedule")
    point = VerifiedCheckpoint.objects.get(run=run)
    assert (run.mode, run.from_seq, run.entries) == ("incremental", SIZE, NEW)
    assert point.checkpoint_id == SIZE + NEW and bytes(point.root) == bytes(
        Checkpoint.objects.get(tree_size=SIZE + NEW).root
    )
    grow(50)
    report = verify_ledger(incremental=True)
    assert (report.intact, report.from_seq, report.entries) == (True, SIZE + NEW, 50)


def test_it_checks_new_entries_after_the_last_checkpoint_and_the_chain_head(verified):
    grow(30, checkpoint=False)
    report = verify_ledger(incremental=True)
    assert report.intact and report.entries == NEW + 30
    assert report.verified.tree_size == SIZE + NEW  # no checkpoint covers the last 30 yet


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seq=st.integers(SIZE, SIZE + NEW - 1) | st.sampled_from([600, 639, 640, 703, 704, 767, 799]),
    how=st.sampled_from(sorted(TAMPERINGS)),
)
def test_it_finds_tampering_in_the_new_entries_incrementally(
    verified, attacker, monkeypatch, seq, how
):
    monkeypatch.setattr("archive.verify.SLICE_LEVEL", 6)
    undo = tampered(attacker, how, seq)
    try:
        report = verify_ledger(incremental=True)
        full = verify_ledger()
    finally:
        undo()
    assert first(report) == (seq, None)
    assert problems(report) == problems(full)


def test_it_finds_the_new_checkpoint_changed_incrementally(verified, attacker):
    attacker.execute("UPDATE archive_checkpoint SET root = sha256(root) WHERE tree_size = 800")
    assert first(verify_ledger(incremental=True)) == (None, 800)


def test_it_finds_new_entries_removed_with_their_checkpoint_behind_a_saved_head(verified, attacker):
    attacker.execute("DELETE FROM archive_content WHERE seq >= 700")
    attacker.execute("DELETE FROM archive_ledgerentry WHERE seq >= 700")
    report = verify_ledger(incremental=True)
    assert not report.intact
    assert first(report) == (None, 800)


def test_it_finds_the_verified_checkpoint_changed(verified, attacker):
    attacker.execute("UPDATE archive_checkpoint SET root = sha256(root) WHERE tree_size = 600")
    report = verify_ledger(incremental=True)
    assert first(report) == (None, 600)
    assert "differs from the one verified" in report.first_problem.what


def test_it_finds_the_link_it_started_from_changed(verified, attacker):
    attacker.execute("UPDATE archive_ledgerentry SET link = sha256(link) WHERE seq = 599")
    assert first(verify_ledger(incremental=True)) == (599, None)


def test_it_refuses_a_forged_record_of_a_checkpoint_never_verified(verified, attacker):
    """A row claiming checkpoint 800 was verified, with any frontier but the true one, does not
    give the signed root: the incremental run reports it rather than start there."""
    (run_id,) = attacker.execute(
        "INSERT INTO archive_verificationrun (started_at, finished_at, intact, entries,"
        " checkpoints, contents, problem, trigger, mode, from_seq)"
        " VALUES (now(), now(), true, 800, 4, 800, '', 'forged', 'full', 0) RETURNING id"
    ).fetchone()
    attacker.execute(
        "INSERT INTO archive_verifiedcheckpoint (run_id, tree_size, root, link, frontier,"
        " verified_by) SELECT %s, tree_size, root, %s, %s, 'x' FROM archive_checkpoint"
        " WHERE tree_size = 800",
        [run_id, bytes(32), bytes(32 * (800).bit_count())],
    )
    report = verify_ledger(incremental=True)
    assert first(report) == (None, 800)
    assert "differs from the one verified" in report.first_problem.what


def test_it_refuses_an_incremental_run_after_a_broken_one(verified, attacker):
    attacker.execute("UPDATE archive_ledgerentry SET link = sha256(link) WHERE seq = 5")
    record_run(verify_ledger(), trigger="command")  # broken: records no checkpoint
    attacker.execute("UPDATE archive_ledgerentry SET link = %s WHERE seq = 5", [_link_of(4, 5)])
    report = verify_ledger(incremental=True)
    assert not report.intact
    assert "found problems" in report.first_problem.what


def _link_of(previous_seq, seq):
    (previous,) = LedgerEntry.objects.filter(seq=previous_seq).values_list("link").get()
    (leaf,) = LedgerEntry.objects.filter(seq=seq).values_list("leaf_hash").get()
    return chain_link(bytes(previous), bytes(leaf))


def test_it_verifies_incrementally_from_the_command_line(verified, capsys):
    call_command("verify_archive", "--incremental")
    assert "intact: 200 new entries (from seq 600)" in capsys.readouterr().out


def test_it_says_to_run_a_full_verification_first(archive):
    with pytest.raises(CommandError, match="full verify_archive first"):
        call_command("verify_archive", "--incremental")


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE archive_verifiedcheckpoint SET root = link",
        "DELETE FROM archive_verifiedcheckpoint",
        "TRUNCATE archive_verifiedcheckpoint CASCADE",
    ],
)
def test_it_refuses_the_runtime_role_any_change_to_what_was_verified(verified, change):
    from django.db import DatabaseError, connection, transaction

    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT set_config('pgtrigger.ignore', '*', true)")
        cursor.execute(change)


# --------------------------------------------------------------------------- the fast path

SEQ, KIND, TIME = 7, "test.message", "2026-01-02T03:04:05.000006Z"
SCALAR_VALUES = (
    st.text(max_size=8)
    | st.sampled_from(["\ud800", "\x00", "\u2028", '"', "\\", "é", "0" * 64, "a" * 64])
    | st.integers(-(2**54), 2**54)
    | st.sampled_from([2**53 - 1, 2**53, -(2**53) + 1, 10**15, 10**16, True, False, None, 1.0])
)
KEYS = st.sampled_from(["a", "b.c", "commit.body", "commit.x", "z_9", "B", "1a", "seq", "v"])


@st.composite
def envelopes(draw):
    """Near-canonical envelopes of this entry, then maybe re-serialised or changed a little."""
    body = {"v": 1, "seq": SEQ, "kind": KIND, "sealed_at": TIME}
    body.update(draw(st.dictionaries(KEYS, SCALAR_VALUES, max_size=4)))
    if draw(st.booleans()):
        body["commit.body"] = draw(st.sampled_from(["ab" * 32, "AB" * 32, "ab" * 31, 5]))
    style = draw(st.sampled_from(["canonical", "ascii", "spaced", "unsorted", "dup", "flip"]))
    dumps = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)
    if style == "ascii":
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    elif style == "spaced":
        text = json.dumps(body, sort_keys=True, ensure_ascii=False)
    elif style == "unsorted":
        text = dumps(dict(reversed(list(body.items()))))
    else:
        text = dumps(body, sort_keys=True)
    data = text.encode("utf-8", "surrogatepass")
    if style == "dup":
        data = data[:-1] + b',"v":1}'
    if style == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


def full_check(envelope):
    result = SliceResult(SEQ, SEQ + 1)
    body = _check_envelope(result, SEQ, KIND, envelope, TIME, set(), {})
    return body, result.problems


@settings(max_examples=600, deadline=None)
@given(envelope=envelopes())
def test_it_takes_the_fast_path_only_for_envelopes_the_full_check_accepts(envelope):
    """The shape memo is primed as if an envelope with these keys had passed before; the fast
    path may still refuse (the full check then decides), but never accepts what it refuses."""
    try:
        keys = tuple(json.loads(envelope))
    except (ValueError, TypeError):
        keys = ()
    valid_names = all(NAME_RE.fullmatch(key) for key in keys)  # as every shape in the memo
    shapes = {keys: tuple(k for k in keys if k.startswith("commit."))} if valid_names else {}
    fast = _fast_body(envelope, SEQ, KIND, TIME, shapes)
    body, found = full_check(envelope)
    if fast is not None:
        assert found == [] and fast == body
    if not found and valid_names and not re.search(rb":-?[0-9]{16}", envelope):
        assert fast == body  # every envelope the full check accepts goes fast, once seen
        # (but an integer of 16 digits, which may or may not be in range)


CANONICAL_VALUES = (
    st.text()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.sampled_from([2**53 - 1, -(2**53) + 1, 0, True, False, None])
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.from_regex(NAME_RE, fullmatch=True), CANONICAL_VALUES, max_size=12))
def test_the_fast_paths_encoder_writes_what_canonical_json_writes(body):
    """The fast path re-encodes with orjson; it is sound only while orjson writes, for every
    envelope body, the bytes canonical_json (the definition) writes, or refuses the body."""
    try:
        expected = canonical_json(body)
    except UnicodeEncodeError:  # a lone surrogate: orjson must refuse it too
        with pytest.raises(TypeError):
            orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        return
    assert orjson.dumps(body, option=orjson.OPT_SORT_KEYS) == expected


def test_the_fast_paths_encoder_escapes_every_character_as_canonical_json_does():
    for first in range(0, 0x110000, 0x1000):
        text = "".join(chr(c) for c in range(first, first + 0x1000) if not 0xD800 <= c < 0xE000)
        body = {"a": text, "b": '\\"' + text[:32]}
        assert orjson.dumps(body, option=orjson.OPT_SORT_KEYS) == canonical_json(body)
