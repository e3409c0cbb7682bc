"""The anchoring runner (archive/anchoring.py): retries with doubling backoff, one worker per
duty, older cosign duties yielding to newer ones, and backfilled duties for old checkpoints.

Duties fail for real here: the records store is a bucket nobody answers for.
"""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from archive import anchoring, ledger
from archive.checkpoints import create_checkpoint
from archive.ledger import Fact
from archive.models import AnchorTask, Checkpoint, CheckpointTimestamp, Publication
from archive.storage_config import storage_options
from tests.conftest import superuser_connect

UNREACHABLE = "s3://nowhere?endpoint=http://127.0.0.1:9&addressing=path"
Duty = AnchorTask.Duty


@pytest.fixture(autouse=True)
def records_on_disk(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "records"
    settings.TSA_URLS = []
    settings.WITNESS_URLS = []


@pytest.fixture
def bucket_down(s3_server, settings):
    """A bucket nobody answers for (s3_server sets the credentials)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "records": storage_options("STORAGE_URL", UNREACHABLE, "x"),
    }


def signed(n=1):
    ledger.append([Fact("test.fact", {"n": i}) for i in range(n)])
    return create_checkpoint()


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=1, max_value=10_000))
def test_the_delay_doubles_up_to_the_cap(attempts, cap):
    from django.conf import settings

    settings.ANCHOR_RETRY_MAX_MINUTES, saved = cap, settings.ANCHOR_RETRY_MAX_MINUTES
    try:
        delay = anchoring.retry_delay(attempts)
        assert delay == timedelta(minutes=min(2 ** (attempts - 1), cap))
        assert anchoring.retry_delay(attempts + 1) >= delay
    finally:
        settings.ANCHOR_RETRY_MAX_MINUTES = saved


@pytest.mark.django_db
def test_a_failing_duty_waits_1_2_4_minutes_then_the_cap(bucket_down, settings):
    settings.ANCHOR_RETRY_MAX_MINUTES = 5
    signed()
    waits = []
    now = timezone.now()
    for _ in range(5):
        with time_machine.travel(now, tick=False):
            assert anchoring.run_due().failed == 1
            task = AnchorTask.objects.get()
            waits.append((task.next_attempt_at - now) / timedelta(minutes=1))
            assert anchoring.run_due().failed == 0  # not due again yet
        now = task.next_attempt_at
    assert waits == [1, 2, 4, 5, 5]
    assert task.attempts == 5
    assert "could not be reached" in task.last_error


@pytest.mark.django_db
def test_a_duty_done_is_deleted_and_what_it_made_kept():
    checkpoint = signed()
    assert anchoring.run_due() == anchoring.RunResult(done=1)
    assert not AnchorTask.objects.exists()
    assert Publication.objects.get().checkpoint == checkpoint


def test_a_duty_another_worker_holds_is_skipped_not_done_twice(committed):
    signed()
    (task,) = AnchorTask.objects.all()
    with superuser_connect() as other, other.transaction():
        other.execute("SELECT 1 FROM archive_anchortask WHERE id = %s FOR UPDATE", [task.pk])
        assert anchoring.run_due() == anchoring.RunResult()
        assert not Publication.objects.exists()
    assert anchoring.run_due().done == 1
    assert Publication.objects.count() == 1


@pytest.mark.django_db
def test_an_older_cosign_duty_yields_to_a_newer_one(settings):
    witness = "http://127.0.0.1:9/witness"
    settings.WITNESS_URLS = [witness]
    signed()
    newer = signed()
    assert anchoring.run_due(duties=[Duty.PUBLISH_NOTE]).dropped == 1
    assert list(
        AnchorTask.objects.filter(duty=Duty.COSIGN).values_list("checkpoint", "target")
    ) == [(newer.tree_size, witness)]


@pytest.mark.django_db
def test_backfill_plans_only_what_an_old_checkpoint_lacks(settings):
    old = signed()
    anchoring.run_due()  # its note is published
    AnchorTask.objects.all().delete()
    unanchored = signed()
    AnchorTask.objects.filter(checkpoint=unanchored).delete()
    now = timezone.now()
    CheckpointTimestamp.objects.create(
        checkpoint=old, token=b"token", tsa_url="x", gen_time=now, received_at=now
    )
    settings.TSA_URLS = ["http://127.0.0.1:9/tsa"]
    assert anchoring.backfill() == 2
    assert set(AnchorTask.objects.values_list("checkpoint", "duty")) == {
        (old.tree_size, Duty.PUBLISH_TIMESTAMP),
        (unanchored.tree_size, Duty.PUBLISH_NOTE),
        (unanchored.tree_size, Duty.TIMESTAMP),
    }
    assert anchoring.backfill() == 0  # each has duties now
    assert Checkpoint.objects.count() == 2
