"""Disposition deletes media from the records bucket (retention/disposition.py), against a real
S3-protocol server on loopback: every version once retain-until has passed, and a refusal from
the bucket stays pending, shown and sealed, until a later run succeeds."""

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from archive.models import LedgerEntry
from archive.storage_config import storage_options
from retention import disposition, holds, object_lock
from retention.models import Disposition, ObjectLock, PendingDeletion
from tests.s3 import CREDENTIALS

from .conftest import Desks, expire_all, extend, hold, new_disposition
from .test_object_lock import ANN, UNREACHABLE, bucket, stored
from .test_views import administrators

__all__ = ["administrators", "bucket"]


def versions(bucket: Any) -> list[Any]:
    found = bucket.list_object_versions(Bucket=bucket.name)
    return [*found.get("Versions", []), *found.get("DeleteMarkers", [])]


def files_sealed() -> list[dict[str, Any]]:
    entries = LedgerEntry.objects.filter(kind="retention.disposition.files").order_by("seq")
    return [json.loads(bytes(entry.envelope)) for entry in entries]


def test_it_deletes_every_version_once_retain_until_has_passed(
    committed: None, desks: Desks, bucket: Any
) -> None:
    media = stored()
    bucket.put_object(Bucket=bucket.name, Key=media.storage_name, Body=b"a second version")
    extend([media.entry_id], timedelta(seconds=1))
    object_lock.reconcile()
    time.sleep(1.5)
    expire_all()
    done = disposition.plan()
    assert done is not None and done.state == Disposition.State.DONE
    assert versions(bucket) == []
    assert not PendingDeletion.objects.exists() and not ObjectLock.objects.exists()


def test_it_lifts_the_legal_hold_it_set_before_deleting(
    committed: None, desks: Desks, bucket: Any
) -> None:
    media = stored()
    matter = hold(participants=[ANN])
    extend([media.entry_id], timedelta(seconds=1))
    object_lock.reconcile()
    assert (
        bucket.head_object(Bucket=bucket.name, Key=media.storage_name)["ObjectLockLegalHoldStatus"]
        == "ON"
    )
    holds.release(matter, None, "The matter settled.")  # the bucket's hold is still on
    time.sleep(1.5)
    expire_all()
    disposition.plan()
    assert versions(bucket) == []
    assert not ObjectLock.objects.filter(storage_name=media.storage_name).exists()


def test_a_refused_deletion_stays_pending_shown_and_sealed_until_a_later_run(
    committed: None, desks: Desks, bucket: Any
) -> None:
    media = stored()
    until = datetime.now(UTC) + timedelta(seconds=2)  # the bucket keeps it longer than the DB
    bucket.put_object_retention(
        Bucket=bucket.name,
        Key=media.storage_name,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
    )
    expire_all()
    done = disposition.plan()
    assert done is not None and done.state == Disposition.State.DONE
    pending = PendingDeletion.objects.get()
    assert (pending.attempts, pending.disposition_id) == (1, done.pk)
    assert "the bucket said AccessDenied" in pending.error

    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.5)
    assert disposition.delete_pending_media() == 1
    assert versions(bucket) == [] and not PendingDeletion.objects.exists()
    sealed = [(f["deleted"], f["refused"]) for f in files_sealed()]
    assert sealed == [(0, 1), (1, 0)]


@pytest.mark.django_db
def test_the_policies_page_shows_files_the_store_has_not_deleted(
    admin_user: Any, client: Client
) -> None:
    done = new_disposition()
    PendingDeletion.objects.create(storage_name="media/ab/ab", disposition=done)
    PendingDeletion.objects.create(
        storage_name="media/cd/cd",
        disposition=done,
        attempts=3,
        attempted_at=timezone.now(),
        error="deleting a media file: the bucket said AccessDenied",
    )
    client.force_login(admin_user)
    page = client.get(reverse("retention:policies")).content.decode()
    assert (
        "2 files not yet deleted from the store: deleting a media file: the bucket said "
        "AccessDenied; retried at the next run"
    ) in page


@pytest.mark.django_db
def test_it_keeps_a_deletion_the_store_cannot_reach_pending(
    settings: Any, monkeypatch: Any
) -> None:
    for name, value in CREDENTIALS.items():  # credentials, so that the failure is the network's
        monkeypatch.setenv(name, value)
    records = storage_options("STORAGE_URL", UNREACHABLE, "archive.objectstore.FileStore")
    settings.STORAGES = {**settings.STORAGES, "records": records}
    PendingDeletion.objects.create(storage_name="media/ab/ab", disposition=new_disposition())
    assert disposition.delete_pending_media() == 0
    pending = PendingDeletion.objects.get()
    assert pending.attempts == 1
    assert pending.error.endswith("the bucket could not be reached (EndpointConnectionError)")


def test_dispose_now_says_which_files_the_store_has_not_deleted(
    administrators: tuple[Any, Any], desks: Desks, bucket: Any, client: Client
) -> None:
    media = stored()
    until = datetime.now(UTC) + timedelta(days=1)
    bucket.put_object_retention(
        Bucket=bucket.name,
        Key=media.storage_name,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
    )
    expire_all()
    client.force_login(administrators[0])
    page = client.post(reverse("retention:dispose"), follow=True).content.decode()
    assert "0 media files deleted" in page
    assert "The records store has not deleted 1 media files of disposition" in page
