"""/healthz and /readyz: open to anyone, the same answer for everyone, nothing revealed."""

import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from archive.models import VerificationRun
from clientwindow import probes
from messaging.models import Delivery
from tests.conftest import superuser_connect

pytestmark = pytest.mark.django_db


def verification(*, intact: bool, days_ago: float = 0) -> VerificationRun:
    finished = timezone.now() - timedelta(days=days_ago)
    return VerificationRun.objects.create(
        started_at=finished,
        finished_at=finished,
        intact=intact,
        entries=1234,
        checkpoints=5,
        contents=1234,
        first_bad_seq=None if intact else 17,
        problem="" if intact else "entry 17: content hash mismatch",
        trigger="schedule",
    )


def a_backlog() -> time_machine.travel:
    oldest = Delivery.objects.create(body=b'{"from": "447700900123"}')
    oldest.refresh_from_db()
    return time_machine.travel(oldest.received_at + timedelta(minutes=6), tick=False)


def checks(response) -> dict[str, dict[str, str]]:
    return response.json()["checks"]


def test_it_answers_liveness_without_login_or_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert (response.status_code, response.content) == (200, b"ok\n")
    assert "no-store" in response["Cache-Control"]


def test_it_is_ready_when_all_is_well(client):
    verification(intact=True)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {
            "database": {"status": "ok"},
            "backlog": {"status": "ok"},
            "verification": {"status": "ok"},
        },
    }
    assert "no-store" in response["Cache-Control"]


def test_it_is_ready_before_the_first_verification_and_says_so(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert checks(response)["verification"] == {"status": "ok", "reason": "not run yet"}


def test_it_is_not_ready_with_a_backlog(client):
    with a_backlog():
        response = client.get("/readyz")
    assert response.status_code == 503
    assert checks(response)["backlog"] == {"status": "failing", "reason": "over alarm threshold"}


def test_it_is_not_ready_when_the_last_verification_found_the_archive_broken(client):
    verification(intact=True, days_ago=1)
    verification(intact=False)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert checks(response)["verification"] == {"status": "failing", "reason": "archive broken"}


def test_it_calls_a_stale_verification_ready_but_says_so(client):
    verification(intact=True, days_ago=3)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert checks(response)["verification"] == {"status": "ok", "reason": "stale"}


def test_it_is_not_ready_when_the_database_does_not_answer_in_time(client, monkeypatch):
    monkeypatch.setattr(probes, "STATEMENT_TIMEOUT", "100ms")
    with superuser_connect() as other, other.transaction():
        other.execute("LOCK TABLE messaging_delivery IN ACCESS EXCLUSIVE MODE")
        response = client.get("/readyz")
    assert response.status_code == 503
    assert checks(response)["database"] == {"status": "failing", "reason": "unavailable"}


def test_it_reveals_no_counts_names_or_ids(client):
    verification(intact=False)
    with a_backlog():
        body = client.get("/readyz").content.decode()
    assert not re.search(r"\d", body)
    assert "content hash" not in body


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_it_answers_outsiders_anonymous_and_administrators_alike(
    client, outsider, admin_user, path
):
    verification(intact=False)
    answers = []
    for user in (None, outsider, admin_user):
        client.logout()
        if user:
            client.force_login(user)
        response = client.get(path)
        answers.append((response.status_code, response.content))
    assert answers[0] == answers[1] == answers[2]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_it_refuses_methods_other_than_get_and_head(path):
    client = Client(enforce_csrf_checks=True)
    assert client.post(path).status_code == 405
    assert client.put(path).status_code == 405
    assert client.head(path).status_code == 200


PROBE = """
import django; django.setup()
from django.test import Client
client = Client()
for path in ("/healthz", "/readyz", "/login/"):
    print(client.get(path).status_code)
"""


def test_it_answers_probes_over_plain_http_in_production_even_without_a_database():
    """The production settings redirect HTTP to HTTPS, but not the probes (load balancers
    probe over plain HTTP); a database that refuses connections is 503, not 500."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLIENTWINDOW_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="clientwindow.settings",
        DJANGO_SECRET_KEY="x" * 50,
        DATABASE_URL="postgres://nobody@127.0.0.1:1/none",
        ALLOWED_HOSTS="testserver",
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False
    )
    assert result.stdout.split() == ["200", "503", "301"], result.stderr
