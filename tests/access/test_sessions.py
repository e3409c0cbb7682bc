"""Session policy (access/sessions.py): idle timeout, absolute lifetime, background polls, and a
recent sign-in before the portal's sensitive actions."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from access.sessions import ACTIVITY_GRAIN

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(legal):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client = Client()
        client.force_login(legal)
        assert client.get("/holds/").status_code == 200
        yield client, clock


def test_it_signs_out_an_idle_session_with_a_notice(signed_in) -> None:
    client, clock = signed_in
    clock.shift(timedelta(minutes=settings.SESSION_IDLE_MINUTES, seconds=1))
    response = client.get("/holds/", follow=True)
    assert "next=/holds/" in response.redirect_chain[0][0]
    assert (
        f"signed out after {settings.SESSION_IDLE_MINUTES} minutes of inactivity" in response.text
    )
    assert client.get("/holds/").status_code == 302


def test_it_keeps_an_active_session(signed_in) -> None:
    client, clock = signed_in
    for _ in range(3):
        clock.shift(timedelta(minutes=settings.SESSION_IDLE_MINUTES - 1))
        assert client.get("/holds/").status_code == 200


def test_it_does_not_count_polling_as_activity(signed_in) -> None:
    client, clock = signed_in
    poll = {"HX-Request": "true", "HX-Trigger": "progress"}
    clock.shift(timedelta(minutes=settings.SESSION_IDLE_MINUTES - 1))
    assert client.get("/holds/", headers=poll).status_code == 200
    clock.shift(timedelta(minutes=2))
    assert client.get("/holds/").status_code == 302


def test_it_ends_a_session_after_its_absolute_lifetime(signed_in) -> None:
    client, clock = signed_in
    for _ in range(settings.SESSION_MAX_HOURS * 60 // (settings.SESSION_IDLE_MINUTES - 1) + 1):
        clock.shift(timedelta(minutes=settings.SESSION_IDLE_MINUTES - 1))
        client.get("/holds/")
    assert client.get("/holds/").status_code == 302


def test_it_lets_a_fresh_sign_in_create_a_hold(signed_in) -> None:
    client, _ = signed_in
    response = client.post("/holds/new/", {})
    assert "reauthenticate" not in response.get("Location", "")


def test_it_asks_for_the_password_again_before_a_hold_later(signed_in) -> None:
    client, clock = signed_in
    clock.shift(timedelta(seconds=settings.ACCOUNT_REAUTHENTICATION_TIMEOUT + 1))
    response = client.post("/holds/new/", {})
    assert response.status_code == 302
    assert "reauthenticate" in response["Location"]
    # confirmed, the suspended POST is replayed: the hold form answers (400: no name given)
    confirm = client.post(response["Location"], {"password": "correct horse battery staple"})
    assert "reauthenticate" not in confirm.get("Location", "")
    assert client.post("/holds/new/", {}).get("Location", "").find("reauthenticate") == -1


def test_it_keeps_the_session_cookie_to_the_browser(signed_in) -> None:
    client, clock = signed_in
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    clock.shift(timedelta(seconds=ACTIVITY_GRAIN + 1))  # activity to record: the session is saved
    cookie = client.get("/holds/").cookies[settings.SESSION_COOKIE_NAME]
    assert (cookie["expires"], cookie["max-age"]) == ("", "")  # a session cookie, not persistent


def test_it_writes_the_session_at_most_once_a_minute(signed_in) -> None:
    client, clock = signed_in
    clock.shift(timedelta(seconds=ACTIVITY_GRAIN + 1))
    assert settings.SESSION_COOKIE_NAME in client.get("/holds/").cookies
    clock.shift(timedelta(seconds=10))
    assert settings.SESSION_COOKIE_NAME not in client.get("/holds/").cookies


def test_it_asks_for_the_password_again_before_changing_retention(admin_user) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client = Client()
        client.force_login(admin_user)
        page = reverse("admin:retention_retentionpolicy_add")
        assert client.get(page).status_code == 200
        clock.shift(timedelta(seconds=settings.ACCOUNT_REAUTHENTICATION_TIMEOUT + 1))
        client.get("/")  # still active: the session lives, the sign-in is no longer recent
        response = client.get(page)
        assert response.status_code == 302
        assert "reauthenticate" in response["Location"]
