"""Ingestion health (administrators, as the ingestion page) and integrity (every role, as the
home page's card) for monitoring."""

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from archive import checkpoints
from archive.models import Checkpoint, VerificationRun
from messaging.models import BacklogAlarm, Delivery
from tests.api.conftest import World, api, world

__all__ = ["world"]

pytestmark = pytest.mark.django_db

ROLES = ["reviewer", "auditor", "legal", "admin_user", "outsider"]


def verification(*, intact: bool) -> VerificationRun:
    return VerificationRun.objects.create(
        started_at=timezone.now(),
        finished_at=timezone.now(),
        intact=intact,
        entries=1234,
        checkpoints=5,
        contents=1234,
        first_bad_seq=None if intact else 17,
        problem="" if intact else "entry 17: content hash mismatch",
        trigger="schedule",
    )


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/health/", {"admin_user"}),
        ("/api/v1/integrity/", {"reviewer", "auditor", "legal", "admin_user"}),
    ],
)
def test_it_lets_the_roles_the_portal_lets_see(
    request: pytest.FixtureRequest, path: str, allowed: set[str]
) -> None:
    for role in ROLES:
        expected = 200 if role in allowed else 403
        assert api(request.getfixturevalue(role)).get(path).status_code == expected, role
    assert api().get(path).status_code == 401


def test_it_reports_ingestion_as_the_page_does(world: World, admin_user: Any) -> None:
    health = api(admin_user).get("/api/v1/health/").json()
    assert health["pending"] == 0 and health["sealed"] > 0
    assert health["backlog"]["oldest_pending"] is None and not health["backlog"]["alarming"]
    assert health["last_received"] is not None and health["recent_unparsed"] == []


def test_it_raises_the_backlog_alarm_with_counts_and_ages_only(admin_user: Any) -> None:
    oldest = Delivery.objects.create(body=b'{"text": "the client\'s secret"}')
    oldest.refresh_from_db()
    with time_machine.travel(oldest.received_at + timedelta(minutes=6), tick=False):
        response = api(admin_user).get("/api/v1/health/")
    backlog = response.json()["backlog"]
    assert backlog["alarming"] and backlog["age_seconds"] == 360
    assert backlog["threshold_minutes"] == 5 and response.json()["pending"] == 1
    assert BacklogAlarm.objects.get(pk=1).raised_at is not None  # as the page raises it
    assert b"secret" not in response.content


def test_it_reports_no_checkpoint_or_verification_yet(reviewer: Any) -> None:
    shown = api(reviewer).get("/api/v1/integrity/").json()
    assert shown["last_checkpoint"] is None and shown["last_verification"] is None
    assert shown["anchoring"]["last_timestamp"] is None and shown["anchoring"]["backlog"] == []


def test_it_reports_the_last_checkpoint_and_verification(world: World, auditor: Any) -> None:
    checkpoint = checkpoints.create_checkpoint()
    assert checkpoint is not None
    verification(intact=True)
    broken = verification(intact=False)
    shown = api(auditor).get("/api/v1/integrity/").json()
    assert shown["last_checkpoint"]["tree_size"] == checkpoint.tree_size == shown["entries"]
    assert shown["last_checkpoint"]["root"] == bytes(checkpoint.root).hex()
    assert shown["unsigned_entries"] == 0
    assert shown["last_verification"]["intact"] is False
    assert shown["last_verification"]["first_bad_seq"] == broken.first_bad_seq == 17
    assert shown["last_verification"]["mode"] == "full"
    assert shown["last_full_verification"] == shown["last_verification"]
    assert Checkpoint.objects.count() == 1


def test_it_reports_an_incremental_run_beside_the_last_full_one(auditor: Any) -> None:
    full = verification(intact=True)
    VerificationRun.objects.create(
        started_at=timezone.now(),
        finished_at=timezone.now(),
        intact=True,
        entries=10,
        checkpoints=2,
        contents=10,
        trigger="schedule",
        mode="incremental",
        from_seq=1234,
    )
    shown = api(auditor).get("/api/v1/integrity/").json()
    assert (shown["last_verification"]["mode"], shown["last_verification"]["from_seq"]) == (
        "incremental",
        1234,
    )
    assert shown["last_full_verification"]["entries"] == full.entries == 1234
