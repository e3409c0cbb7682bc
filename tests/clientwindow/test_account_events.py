"""Account events reach the access log: sign-in (and how), sign-out, failed sign-in, second
factors added, failed and removed, re-authentication. Never a password or a code."""

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.totp.internal.auth import (
    SECRET_SESSION_KEY,
    format_hotp_value,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, RequestFactory
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clientwindow.account_events import how_signed_in
from review.models import AccessEvent

PASSWORD = "correct horse battery staple"
NOW = timezone.now().replace(microsecond=0)


def actions(user: User | None = None) -> list[str]:
    return list(
        AccessEvent.objects.filter(user=user).order_by("id").values_list("action", flat=True)
    )


def sign_in(client: Client, name: str, password: str = PASSWORD) -> Any:
    return client.post("/accounts/login/", {"login": name, "password": password})


def current_code(client: Client) -> str:
    secret = client.session[SECRET_SESSION_KEY]
    return format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))


def test_it_records_a_password_sign_in_and_the_sign_out(client: Client, reviewer: User) -> None:
    assert sign_in(client, "rey").status_code == 302
    login = AccessEvent.objects.get(action=AccessEvent.Action.LOGIN)
    assert (login.user, login.address, login.detail) == (reviewer, "127.0.0.1", {"how": "password"})
    client.post("/logout/")
    assert actions(reviewer) == ["login", "logout"]


def test_it_does_not_record_a_login_outside_a_request(client: Client, reviewer: User) -> None:
    client.force_login(reviewer)  # the test client's, or a shell's
    client.logout()
    assert not AccessEvent.objects.exists()


def test_it_records_a_failed_sign_in_without_the_password(client: Client, reviewer: User) -> None:
    sign_in(client, "rey", "not the password")
    sign_in(client, "nobody", "hunter2")
    failed = AccessEvent.objects.filter(action="login_failed").order_by("id")
    assert [(e.user, e.username) for e in failed] == [(reviewer, "rey"), (None, "nobody")]
    stored = str(list(AccessEvent.objects.values()))
    assert "not the password" not in stored and "hunter2" not in stored


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(typed=st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=300))
def test_it_keeps_any_typed_name_as_typed_up_to_150_characters(db: None, typed: str) -> None:
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR="192.0.2.7")
    before = AccessEvent.objects.count()
    assert authenticate(request, username=typed, password="wrong") is None
    event = AccessEvent.objects.order_by("-id").first()
    assert AccessEvent.objects.count() == before + 1 and event is not None
    assert (event.action, event.username, event.user) == ("login_failed", typed[:150], None)
    assert "wrong" not in str(event.detail)


def test_it_records_a_second_factor_from_enrolment_to_removal(
    client: Client, reviewer: User, django_capture_on_commit_callbacks: Any
) -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        sign_in(client, "rey")
        assert client.post("/accounts/reauthenticate/", {"password": PASSWORD}).status_code == 302
        client.get("/accounts/2fa/totp/activate/")
        with django_capture_on_commit_callbacks(execute=True):  # allauth signals after commit
            enrolled = client.post("/accounts/2fa/totp/activate/", {"code": current_code(client)})
        assert enrolled.status_code == 302
        client.post("/logout/")
        sign_in(client, "rey")
        secret = reviewer.authenticator_set.get(type="totp").wrap().instance.data["secret"]
        client.post("/accounts/2fa/authenticate/", {"code": "000000"})
        clock.shift(timedelta(seconds=31))  # a code is used once: the next window's
        code = format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))
        assert client.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 302
        client.post("/accounts/reauthenticate/", {"password": PASSWORD})
        client.post("/accounts/2fa/totp/deactivate/")
    assert actions(reviewer) == [
        "login",
        "reauthenticated",
        "mfa_added",
        "mfa_added",
        "logout",
        "mfa_failed",
        "login",
        "reauthenticated",
        "mfa_removed",
        "mfa_removed",
    ]
    added = AccessEvent.objects.filter(action="mfa_added").order_by("id")
    assert [e.detail["type"] for e in added] == ["totp", "recovery_codes"]
    login = AccessEvent.objects.filter(action="login").order_by("id").last()
    assert login is not None and login.detail == {"how": "password", "second_factor": "totp"}
    assert code not in str(list(AccessEvent.objects.values()))


@pytest.mark.parametrize(
    ("steps", "how"),
    [
        (
            [("socialaccount", {"provider": "okta", "uid": "00u1"})],
            {"how": "sso", "provider": "okta"},
        ),
        ([("mfa", {"type": "webauthn", "passwordless": True})], {"how": "passkey"}),
        (
            [("password", {}), ("mfa", {"type": "recovery_codes"})],
            {"how": "password", "second_factor": "recovery_codes"},
        ),
        ([], {"how": "unknown"}),
    ],
)
def test_it_says_how_a_sign_in_was_done(
    reviewer: User, steps: list[Any], how: dict[str, str]
) -> None:
    request = RequestFactory().get("/")
    request.session = SessionStore()
    request.user = reviewer
    for method, extra in steps:  # as allauth's sign-in flows note them in the session
        record_authentication(request, reviewer, method, **extra)
    assert how_signed_in(request, reviewer) == how
