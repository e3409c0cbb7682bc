"""The records bucket enforces what PostgreSQL enforces (retention/object_lock.py), against a real
S3-protocol server on loopback (moto's, tests/s3.py), read back with head_object.

Short retentions (seconds) need a bucket without a default retention: on AWS a default of a day
could not be shortened to seconds, and moto's acceptance of that is not relied on (tests/s3.py).
"""

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from archive import objectstore
from archive.storage_config import storage_options
from messaging.models import Wakeup
from retention import holds, object_lock, policies, tasks
from retention.models import ObjectLock
from tests.s3 import CREDENTIALS, make_bucket, s3_client, store_url

from .conftest import Desks, default_policy, extend, hold, image, record, seal, store

ANN = "447700900101"


@pytest.fixture
def bucket(worm_bucket: str, s3_server: str) -> Any:
    """The records bucket, with Object Lock but no default retention: only what the archive
    sets protects an object (`.name`, `.client`)."""
    client = s3_client(s3_server)
    client.put_object_lock_configuration(
        Bucket=worm_bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
    )
    client.name = worm_bucket
    return client


def stored(wamid: str = "wamid.pic") -> Any:
    seal(image(ANN, "Ann Hart", wamid, "the picture"))
    return store(wamid)


def head(bucket: Any, name: str) -> dict[str, Any]:
    return bucket.head_object(Bucket=bucket.name, Key=name)  # type: ignore[no-any-return]


def close(a: Any, b: Any) -> bool:
    return abs(a - b) < timedelta(seconds=1)


@pytest.mark.django_db
def test_it_sets_compliance_retention_until_the_records_retain_until(
    desks: Desks, bucket: Any
) -> None:
    media = stored()
    object_lock.reconcile()
    found = head(bucket, media.storage_name)
    assert found["ObjectLockMode"] == "COMPLIANCE"
    assert close(found["ObjectLockRetainUntilDate"], record(media.entry_id).retain_until)


@pytest.mark.django_db
def test_it_lengthens_an_objects_retention_with_its_policy(desks: Desks, bucket: Any) -> None:
    media = stored()
    object_lock.reconcile()
    policy = default_policy()
    policy.days += 365
    policies.save(policy, None)
    assert object_lock.reconcile().retained == 1
    until = head(bucket, media.storage_name)["ObjectLockRetainUntilDate"]
    assert close(until, record(media.entry_id).retain_until)
    assert close(until, media.entry.sealed_at + timedelta(days=policy.days))


@pytest.mark.django_db
def test_it_touches_only_objects_whose_wanted_lock_changed(desks: Desks, bucket: Any) -> None:
    stored()
    assert object_lock.reconcile().retained == 1
    assert object_lock.reconcile().summary() == "0 retained, 0 held, 0 released, 0 failed"


@pytest.mark.django_db
def test_a_legal_hold_sets_the_objects_legal_hold_and_its_release_clears_it(
    desks: Desks, bucket: Any
) -> None:
    media = stored()
    matter = hold(participants=[ANN])
    object_lock.reconcile()
    assert head(bucket, media.storage_name)["ObjectLockLegalHoldStatus"] == "ON"
    holds.release(matter, None, "The matter settled.")
    assert object_lock.reconcile().released == 1
    assert head(bucket, media.storage_name)["ObjectLockLegalHoldStatus"] == "OFF"


@pytest.mark.django_db
def test_it_records_a_refusal_on_the_objects_row_and_goes_on(
    desks: Desks, s3_server: str, settings: Any
) -> None:
    """A bucket without Object Lock refuses retention: each object says so, none is skipped."""
    url = store_url(s3_server, make_bucket(s3_server, lock=False))
    records = storage_options("STORAGE_URL", url, "archive.objectstore.FileStore")
    settings.STORAGES = {**settings.STORAGES, "records": records}
    first, second = stored("wamid.one"), store_one_more()
    done = object_lock.reconcile()
    assert done.failed == 2
    for media in (first, second):
        lock = ObjectLock.objects.get(storage_name=media.storage_name)
        assert "the bucket said InvalidRequest" in lock.error and lock.applied_at is None


def store_one_more() -> Any:
    seal(image(ANN, "Ann Hart", "wamid.two", "another"))
    return store("wamid.two", b"\x89PNG another picture")


@pytest.mark.django_db
def test_it_records_what_it_asked_of_a_filesystem_store(desks: Desks) -> None:
    """The filesystem enforces nothing (docs/RETENTION.md says so); the table still says what
    the archive asked for."""
    media = stored()
    hold(participants=[ANN])
    object_lock.reconcile()
    lock = ObjectLock.objects.get(storage_name=media.storage_name)
    assert (lock.retain_until, lock.held) == (record(media.entry_id).retain_until, True)
    assert isinstance(objectstore.records(), objectstore.FileStore)


def test_it_never_sends_a_shorter_retention_than_it_applied(
    committed: None, desks: Desks, bucket: Any
) -> None:
    media = stored()
    extend([media.entry_id], timedelta(days=30))
    object_lock.reconcile()
    extend([media.entry_id], timedelta(days=10))  # the superuser's hand: the record shortened
    assert object_lock.reconcile().retained == 0
    until = head(bucket, media.storage_name)["ObjectLockRetainUntilDate"]
    assert until > timezone.now() + timedelta(days=29)


def test_it_is_woken_after_media_or_a_hold_commits(committed: None, desks: Desks) -> None:
    stored()
    assert Wakeup.objects.get(func=object_lock.TASK).queued
    assert tasks.reconcile_object_locks() == "1 retained, 0 held, 0 released, 0 failed"
    assert not Wakeup.objects.get(func=object_lock.TASK).queued
    hold(participants=[ANN])
    assert Wakeup.objects.get(func=object_lock.TASK).queued


@pytest.mark.django_db
def test_it_runs_from_the_command_line(desks: Desks) -> None:
    stored()
    out = io.StringIO()
    call_command("object_lock", stdout=out)
    assert out.getvalue() == "1 retained, 0 held, 0 released, 0 failed\n"
    ObjectLock.objects.update(error="holding a media file: the bucket said AccessDenied")
    call_command("object_lock", "--errors", stdout=out)
    assert out.getvalue().endswith(": holding a media file: the bucket said AccessDenied\n")


UNREACHABLE = "s3://records?endpoint=http://127.0.0.1:9&addressing=path"


@pytest.mark.django_db
def test_it_records_an_unreachable_store_on_the_row(
    desks: Desks, settings: Any, monkeypatch: Any
) -> None:
    for name, value in CREDENTIALS.items():  # credentials, so that the failure is the network's
        monkeypatch.setenv(name, value)
    media = stored()
    records = storage_options("STORAGE_URL", UNREACHABLE, "archive.objectstore.FileStore")
    settings.STORAGES = {**settings.STORAGES, "records": records}
    assert object_lock.reconcile().failed == 1
    lock = ObjectLock.objects.get(storage_name=media.storage_name)
    assert lock.error.endswith("the bucket could not be reached (EndpointConnectionError)")
