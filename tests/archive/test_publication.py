"""Checkpoints published to a WORM bucket (moto on loopback, Object Lock in COMPLIANCE mode) and a
CHECKPOINT_DIR, and verify_archive --against-published catching what an attacker with the
database does to them."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from archive import (
    anchoring,
    checkpoints,
    ledger,
    objectstore,
    publication,
    signing,
    storage_migration,
)
from archive.anchoring import AnchorFailure
from archive.checkpoints import create_checkpoint
from archive.ledger import Fact, chain_link
from archive.merkle import CompactRange, leaf_hash
from archive.models import AnchorTask, Checkpoint, CheckpointTimestamp, Publication
from archive.objectstore import FileStore
from archive.storage_config import storage_options
from archive.verify import verify_ledger
from retention.models import MAX_DAYS
from tests.s3 import make_bucket, s3_client, store_url

UNREACHABLE = "s3://nowhere?endpoint=http://127.0.0.1:9&addressing=path"


@pytest.fixture
def checkpoint_dir(settings, tmp_path):
    settings.CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    return tmp_path / "checkpoints"


@pytest.fixture
def bucket(worm_bucket, settings):
    client = s3_client(settings.STORAGES["records"]["OPTIONS"]["endpoint_url"])
    return lambda: (client, worm_bucket)


@pytest.fixture
def signed(db):
    ledger.append([Fact("test.fact", {"n": n}) for n in range(5)])
    return create_checkpoint()


def key(size, suffix="note"):
    return f"ledger/checkpoints/{size:020d}.{suffix}"


def test_the_lock_is_as_long_as_the_longest_retention_policy():
    assert publication.RETAIN_DAYS == MAX_DAYS


def test_it_publishes_the_note_to_the_bucket_locked_and_to_the_directory(
    signed, bucket, checkpoint_dir
):
    assert anchoring.run_due().done == 1
    client, name = bucket()
    head = client.head_object(Bucket=name, Key=key(5))
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=36_500)
    stored = client.get_object(Bucket=name, Key=key(5))["Body"].read()
    on_disk = checkpoint_dir / f"{5:020d}.note"
    assert stored == on_disk.read_bytes() == signed.note.encode()
    assert on_disk.stat().st_mode & 0o222 == 0  # read-only
    assert set(Publication.objects.values_list("target", "location")) == {
        ("records", key(5)),
        ("directory", str(on_disk)),
    }
    assert not AnchorTask.objects.exists()


def test_it_publishes_the_newest_timestamp_token(signed, bucket, checkpoint_dir):
    now = timezone.now()
    for n, token in enumerate([b"older token", b"newer token"]):
        CheckpointTimestamp.objects.create(
            checkpoint=signed,
            token=token,
            tsa_url="http://127.0.0.1/tsa",
            gen_time=now,
            received_at=now + timedelta(seconds=n),
        )
    publication.publish(signed, "timestamp")
    client, name = bucket()
    assert client.get_object(Bucket=name, Key=key(5, "tst"))["Body"].read() == b"newer token"
    assert (checkpoint_dir / f"{5:020d}.tst").read_bytes() == b"newer token"


def test_it_publishes_a_real_token_and_verify_finds_it_changed(tsa, signed, bucket, checkpoint_dir):
    # The note, and the token, whose arrival adds the duty of publishing it.
    assert anchoring.run_due(everything=True).done == 2
    assert anchoring.run_due(everything=True).done == 1
    token = bytes(CheckpointTimestamp.objects.get().token)
    client, name = bucket()
    assert client.get_object(Bucket=name, Key=key(5, "tst"))["Body"].read() == token
    report = verify_ledger(against_published=True)
    assert report.intact, report.problems
    assert (
        report.anchors[5]["published"] == "note: directory, records; timestamp: directory, records"
    )
    path = checkpoint_dir / f"{5:020d}.tst"
    path.chmod(0o644)
    path.write_bytes(token[:-1] + bytes([token[-1] ^ 1]))
    report = verify_ledger(against_published=True)
    assert str(report.first_problem) == (
        f"checkpoint 5: the published timestamp token in CHECKPOINT_DIR ({path}) differs from"
        " the database's"
    )


def test_it_waits_for_a_token_before_publishing_one(signed, worm_bucket):
    with pytest.raises(AnchorFailure, match="has no timestamp token yet"):
        publication.publish(signed, "timestamp")


def test_publishing_twice_is_one_publication_per_place(signed, worm_bucket, checkpoint_dir):
    publication.publish(signed, "note")
    publication.publish(signed, "note")
    assert Publication.objects.count() == 2


def test_it_never_replaces_different_bytes_in_the_bucket(signed, bucket):
    client, name = bucket()
    client.put_object(Bucket=name, Key=key(5), Body=b"someone else's")
    with pytest.raises(AnchorFailure, match=f"{key(5)} already holds different bytes"):
        publication.publish(signed, "note")
    assert not Publication.objects.exists()


def test_it_never_replaces_a_different_file_in_the_directory(signed, worm_bucket, checkpoint_dir):
    checkpoint_dir.mkdir()
    (checkpoint_dir / f"{5:020d}.note").write_bytes(b"someone else's")
    with pytest.raises(AnchorFailure, match=f"{5:020d}.note already holds different bytes"):
        publication.publish(signed, "note")
    assert (checkpoint_dir / f"{5:020d}.note").read_bytes() == b"someone else's"


@hypothesis_settings(max_examples=30, deadline=None)
@given(first=st.binary(max_size=64), second=st.binary(max_size=64))
def test_a_directory_file_once_written_keeps_its_bytes(tmp_path_factory, first, second):
    directory = tmp_path_factory.mktemp("checkpoints")
    path = directory / "00000000000000000001.note"
    publication._write_new(path, first)
    publication._write_new(path, second)
    assert path.read_bytes() == first
    assert [p.name for p in directory.iterdir()] == [path.name]  # no temporary file left


def test_an_unwritable_directory_is_a_failure_naming_it(signed, worm_bucket, settings, tmp_path):
    (tmp_path / "a file").write_text("not a directory")
    settings.CHECKPOINT_DIR = str(tmp_path / "a file")
    with pytest.raises(
        AnchorFailure, match=r"CHECKPOINT_DIR: .*a file/0+5\.note cannot be written"
    ):
        publication.publish(signed, "note")


def test_an_unreachable_bucket_leaves_the_duty_with_its_reason_until_it_answers(
    signed, worm_bucket, settings
):
    reachable = settings.STORAGES["records"]
    settings.STORAGES = {
        **settings.STORAGES,
        "records": storage_options("STORAGE_URL", UNREACHABLE, "x"),
    }
    assert anchoring.run_due().failed == 1
    task = AnchorTask.objects.get()
    assert (task.duty, task.attempts) == ("publish.note", 1)
    assert task.last_error.startswith(f"records store: looking for {key(5)}")
    assert "could not be reached" in task.last_error
    assert not Publication.objects.exists()
    settings.STORAGES = {**settings.STORAGES, "records": reachable}
    assert anchoring.run_due().done == 0  # backing off: due a minute later
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert anchoring.run_due().done == 1
    assert Publication.objects.get().location == key(5)


def test_storage_migrate_carries_published_checkpoints_and_republish_locks_them(
    signed, settings, tmp_path, s3_server
):
    settings.MEDIA_ROOT = tmp_path / "media"
    publication.publish(signed, "note")
    storage_migration.register(publication.stored_files)  # archive/apps.py does this
    bucket = make_bucket(s3_server, lock=True)
    settings.STORAGES = {
        **settings.STORAGES,
        "records": storage_options("STORAGE_URL", store_url(s3_server, bucket), "x"),
    }
    moved = storage_migration.migrate(FileStore(location=tmp_path / "media"), objectstore.records())
    assert key(5) in moved.copied
    assert publication.republish() == 1
    head = s3_client(s3_server).head_object(Bucket=bucket, Key=key(5))
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=36_500)
    assert verify_ledger(against_published=True).intact


# --- verify_archive --against-published ---------------------------------------------------


@pytest.fixture
def published(archive, bucket, checkpoint_dir):
    """The 600-entry archive (tests/archive/conftest.py) with its three checkpoints published."""
    assert anchoring.run_due().done == 3
    return bucket()


def test_it_finds_the_published_checkpoints_in_agreement(published):
    report = verify_ledger(against_published=True)
    assert report.intact, report.problems
    assert report.anchors[300]["published"] == "note: directory, records"


def test_it_catches_a_published_checkpoint_deleted_from_the_bucket(published):
    client, name = published
    client.delete_object(Bucket=name, Key=key(300))  # a delete marker: the lock allows it
    assert verify_ledger().intact
    report = verify_ledger(against_published=True)
    assert str(report.first_problem) == (
        f"checkpoint 300: its published note is missing from the records store ({key(300)})"
    )


def test_it_catches_a_changed_file_in_the_directory(published, checkpoint_dir):
    path = checkpoint_dir / f"{100:020d}.note"
    path.chmod(0o644)
    path.write_text(path.read_text().replace("time 20", "time 19"))
    report = verify_ledger(against_published=True)
    assert str(report.first_problem) == (
        f"checkpoint 100: the published note in CHECKPOINT_DIR ({path}) differs from the database's"
    )


def test_it_catches_a_database_truncated_after_a_published_checkpoint(published, attacker):
    """The database alone looks intact: the 600-entry checkpoint and its entries are gone."""
    for table in ("archive_publication", "archive_anchortask", "archive_checkpoint"):
        attacker.execute(f"DELETE FROM {table} WHERE tree_size = 600")
    _truncate(attacker, 300)
    assert verify_ledger().intact
    report = verify_ledger(against_published=True)
    assert report.first_problem.checkpoint == 600
    problems = [p.what for p in report.problems]
    assert "the published checkpoint covers 600 entries but the ledger holds 300" in problems
    assert (
        f"the published checkpoint in the records store ({key(600)}) is not in the database"
        in problems
    )


def test_it_catches_a_ledger_rewritten_and_re_signed(published, attacker):
    """Rewritten entries and checkpoints re-signed with the server's own key pass the database's
    checks; the locked published notes do not match them."""
    _rewrite_entry(attacker, 5)
    assert verify_ledger(contents=False).intact
    report = verify_ledger(contents=False, against_published=True)
    assert report.first_problem.checkpoint == 100
    what = [p.what for p in report.problems if p.checkpoint == 100]
    assert "the published checkpoint root does not match the ledger" in what
    assert any("not consistent with the ledger's tree of 600 entries" in w for w in what)
    assert any(w.startswith("the published note in the records store") for w in what)


def test_it_asks_for_checkpoint_dir_when_the_directory_copies_cannot_be_checked(
    published, settings
):
    settings.CHECKPOINT_DIR = ""
    report = verify_ledger(against_published=True)
    assert [p.what for p in report.problems] == [
        "3 checkpoints were published to a CHECKPOINT_DIR, which is not set here: set it to"
        " check them"
    ]


def test_it_names_a_file_that_is_not_a_published_checkpoint(published, checkpoint_dir):
    (checkpoint_dir / "notes.txt").write_text("hello")
    report = verify_ledger(against_published=True)
    assert report.first_problem.what.endswith(
        "notes.txt in CHECKPOINT_DIR is not a published checkpoint"
    )


def test_it_says_when_the_bucket_cannot_be_read(published, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "records": storage_options("STORAGE_URL", UNREACHABLE, "x"),
    }
    report = verify_ledger(against_published=True)
    assert report.first_problem.what.startswith(
        "the published checkpoints in the records store cannot be read"
    )


def test_the_command_lists_each_checkpoints_anchors(published, capsys):
    call_command("verify_archive", "--against-published", "--checkpoints", "--no-record")
    out = capsys.readouterr().out
    assert "checkpoint 300" in out
    assert "published note: directory, records" in out
    assert "anchoring: 3 checkpoints; 0 timestamped, 3 published, 0 cosigned" in out


def test_the_command_names_a_deleted_published_checkpoint(published, capsys):
    client, name = published
    client.delete_object(Bucket=name, Key=key(600))
    with pytest.raises(SystemExit):
        call_command("verify_archive", "--against-published", "--json", "--no-record")
    report = json.loads(capsys.readouterr().out)
    assert report["problems"][0]["checkpoint"] == 600
    assert "missing from the records store" in report["problems"][0]["what"]
    assert report["anchors"][0]["published"] == "note: directory, records"


def _truncate(attacker, size):
    """Remove the entries from `size` on and make the head say the ledger ends there."""
    attacker.execute("DELETE FROM archive_content WHERE seq >= %s", [size])
    attacker.execute("DELETE FROM archive_ledgerentry WHERE seq >= %s", [size])
    attacker.execute("DELETE FROM archive_merklenode WHERE level = 9 OR index >= 1")
    (link,) = attacker.execute(
        "SELECT link FROM archive_ledgerentry WHERE seq = %s", [size - 1]
    ).fetchone()
    frontier = CompactRange()
    for (leaf,) in attacker.execute("SELECT leaf_hash FROM archive_ledgerentry ORDER BY seq"):
        frontier.append(bytes(leaf))
    attacker.execute(
        "UPDATE archive_chainhead SET size = %s, link = %s, frontier = %s",
        [size, link, frontier.to_bytes()],
    )


def _rewrite_entry(attacker, seq):
    """Change one envelope, rehash every link and node, and re-sign every checkpoint."""
    rows = attacker.execute("SELECT seq, envelope FROM archive_ledgerentry ORDER BY seq").fetchall()
    link, frontier, roots = bytes(32), CompactRange(), {}
    for n, envelope in rows:
        envelope = bytes(envelope).replace(b'"n":5,', b'"n":6,') if n == seq else bytes(envelope)
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
            [envelope, leaf, link, n],
        )
        roots[frontier.size] = frontier.root()
    attacker.execute(
        "UPDATE archive_chainhead SET link = %s, frontier = %s", [link, frontier.to_bytes()]
    )
    for checkpoint in Checkpoint.objects.all():
        when = checkpoint.note.split("\ntime ")[1].split("\n")[0]
        body = checkpoints.checkpoint_body(
            checkpoints.key_name(), checkpoint.tree_size, roots[checkpoint.tree_size], when
        )
        note = signing.sign_note(body, checkpoints.key_name(), checkpoints.signing_key())
        attacker.execute(
            "UPDATE archive_checkpoint SET root = %s, note = %s WHERE tree_size = %s",
            [roots[checkpoint.tree_size], note, checkpoint.tree_size],
        )


def test_it_reads_nothing_from_an_empty_directory(published, checkpoint_dir):
    for path in checkpoint_dir.iterdir():
        path.chmod(0o644)
        path.unlink()
    report = verify_ledger(against_published=True)
    assert {p.what.split(" (")[0] for p in report.problems} == {
        "its published note is missing from CHECKPOINT_DIR"
    }
