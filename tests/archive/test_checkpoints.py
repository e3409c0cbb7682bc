import base64

import pytest

from archive import checkpoints, ledger, signing
from archive.checkpoints import create_checkpoint, parse_checkpoint_body
from archive.ledger import Fact
from archive.merkle import InMemoryTree
from archive.models import Checkpoint, LedgerEntry
from archive.tasks import checkpoint_task, verify_task

pytestmark = pytest.mark.django_db


def leaves():
    return InMemoryTree(bytes(h) for h in LedgerEntry.objects.values_list("leaf_hash", flat=True))


def test_it_signs_nothing_for_an_empty_ledger():
    assert create_checkpoint() is None


def test_it_signs_the_root_of_the_whole_ledger():
    ledger.append([Fact("test.fact", {"n": n}) for n in range(37)])
    checkpoint = create_checkpoint()
    assert checkpoint.tree_size == 37
    assert bytes(checkpoint.root) == leaves().root()


def test_it_writes_a_c2sp_checkpoint_note():
    ledger.append([Fact("test.fact")])
    note = create_checkpoint().note
    text = signing.open_note(note, checkpoints.verifiers())
    origin, size, root = parse_checkpoint_body(text)
    lines = text.splitlines()
    assert (origin, size, lines[2]) == (
        "clientwindow.local/ledger",
        1,
        base64.b64encode(root).decode(),
    )
    assert lines[3].startswith("time 20") and lines[3].endswith("Z")


def test_it_signs_again_only_when_entries_were_added():
    ledger.append([Fact("test.fact")])
    create_checkpoint()
    assert create_checkpoint() is None
    ledger.append([Fact("test.fact")])
    assert create_checkpoint().tree_size == 2
    assert Checkpoint.objects.count() == 2


def test_it_keeps_old_checkpoints_verifiable_after_a_key_rotation(settings, tmp_path):
    ledger.append([Fact("test.fact")])
    old_note = create_checkpoint().note
    old_key = checkpoints.verifier_key_text()
    settings.LEDGER_SIGNING_KEY_FILE = tmp_path / "new.pem"
    settings.LEDGER_PREVIOUS_VERIFIER_KEYS = [old_key]
    checkpoints.signing_key.cache_clear()
    try:
        assert checkpoints.verifier_key_text() != old_key
        assert signing.open_note(old_note, checkpoints.verifiers())
    finally:
        checkpoints.signing_key.cache_clear()


def test_it_runs_the_scheduled_tasks():
    ledger.append([Fact("test.fact")] * 2)
    assert checkpoint_task() == 2
    assert checkpoint_task() is None
    assert verify_task() is True


def test_it_schedules_checkpoints_sweeps_and_verification():
    from django_q.models import Schedule

    names = set(Schedule.objects.values_list("name", flat=True))
    assert names >= {"ledger checkpoint", "delivery sweep", "media fetch", "archive verification"}
    checkpoint = Schedule.objects.get(name="ledger checkpoint")
    assert (checkpoint.func, checkpoint.minutes, checkpoint.repeats) == (
        "archive.tasks.checkpoint_task",
        5,
        -1,
    )
