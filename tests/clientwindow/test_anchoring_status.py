"""The integrity status shows what anchors checkpoints outside the database, and the work still
waiting with its reason: on the home page and on the ingestion page (archive/status.py)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from archive import anchoring, ledger
from archive.checkpoints import create_checkpoint
from archive.ledger import Fact
from archive.models import AnchorTask, Checkpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def checkpoint() -> Checkpoint:
    ledger.append([Fact("test.fact", {"n": 1})])
    made = create_checkpoint()
    assert made is not None
    return made


def page(client, user, name: str) -> str:
    client.force_login(user)
    response = client.get(reverse(name))
    assert response.status_code == 200
    return response.content.decode()


def test_it_says_when_no_timestamp_authority_is_configured(client, auditor, settings, checkpoint):
    settings.TSA_URLS = []
    shown = page(client, auditor, "home")
    assert "not configured" in shown
    assert "TSA_URLS" in shown


def test_it_shows_checkpoints_awaiting_a_timestamp_with_the_oldest_age_and_reason(
    client, auditor, admin_user, settings
):
    settings.TSA_URLS = ["http://127.0.0.1:9/"]
    ledger.append([Fact("test.fact", {"n": 1})])
    first = create_checkpoint()
    ledger.append([Fact("test.fact", {"n": 2})])
    create_checkpoint()
    assert first is not None
    AnchorTask.objects.filter(duty=AnchorTask.Duty.TIMESTAMP).update(
        last_error="http://127.0.0.1:9/: connection refused", attempts=3
    )
    assert timezone.now() - first.created_at < timedelta(minutes=1)  # the age counts from it
    for user, name in ((auditor, "home"), (admin_user, "ingestion")):
        shown = page(client, user, name)
        assert 'id="awaiting-timestamp"' in shown
        assert "2 checkpoints awaiting a timestamp, the oldest for 0\xa0minutes" in shown
        assert "connection refused" in shown


def test_it_shows_publication_waiting_and_clears_once_done(client, auditor, checkpoint):
    AnchorTask.objects.filter(duty=AnchorTask.Duty.PUBLISH_NOTE).update(
        last_error="records store refused the write: AccessDenied"
    )
    shown = page(client, auditor, "home")
    assert "1 checkpoint not yet published" in shown
    assert "AccessDenied" in shown
    AnchorTask.objects.filter(duty=AnchorTask.Duty.PUBLISH_NOTE).delete()
    assert 'id="awaiting-publication"' not in page(client, auditor, "home")


def test_the_backlog_counts_checkpoints_not_duties(settings, checkpoint):
    settings.WITNESS_URLS = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    anchoring.add_duty(checkpoint, AnchorTask.Duty.COSIGN, "http://127.0.0.1:9/a")
    anchoring.add_duty(checkpoint, AnchorTask.Duty.COSIGN, "http://127.0.0.1:9/b")
    found = {b.duty: b.checkpoints for b in anchoring.backlog()}
    assert found[AnchorTask.Duty.COSIGN] == 1
