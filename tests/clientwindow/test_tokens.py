"""API tokens: hashed at rest, shown once, expiring, revocable, throttled, never more than
their owner (clientwindow/tokens.py, token_views.py, the admin's page)."""

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from auditlog.models import LogEntry
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from clientwindow.models import ApiToken
from clientwindow.tokens import new_token
from review.models import AccessEvent

API = "/api/v1/exports/"
PASSWORD = "correct horse battery staple"  # tests/conftest.py make_user


def api(secret: str, keyword: str = "Bearer") -> Any:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {secret}")
    return client.get(API)


def refusals() -> list[dict[str, Any]]:
    return list(
        AccessEvent.objects.filter(action=AccessEvent.Action.TOKEN_REFUSED).values_list(
            "detail", flat=True
        )
    )


def issue_in_portal(client: Any, user: Any, **form: Any) -> Any:
    client.force_login(user)
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    return client.post(reverse("tokens:create"), {"name": "e-discovery", "days": 30, **form})


def test_it_shows_the_secret_once_and_keeps_only_its_digest(
    client: Any, legal: Any, admin_user: Any
) -> None:
    page = issue_in_portal(client, legal)
    assert page.status_code == 200, page.content
    secret = page.context["secret"]
    token = ApiToken.objects.get()
    assert secret.startswith(token.prefix) and len(secret) == 8 + 43
    stored = [
        *ApiToken.objects.values_list(),
        *AccessEvent.objects.values_list(),
        *LogEntry.objects.values_list(),
    ]
    assert secret not in repr(stored) and secret[8:20] not in repr(stored)
    assert secret not in client.get(reverse("tokens:list")).content.decode()
    assert AccessEvent.objects.filter(user=legal, action=AccessEvent.Action.TOKEN_ISSUED).exists()
    client.force_login(admin_user)
    for url in (
        "/admin/clientwindow/apitoken/",
        f"/admin/clientwindow/apitoken/{token.pk}/change/",
    ):
        shown = client.get(url)
        assert shown.status_code == 200 and token.prefix in shown.content.decode()
        assert secret not in shown.content.decode() and token.hash not in shown.content.decode()
    assert api(secret).status_code == 200


def test_issuing_asks_for_a_recent_reauthentication(client: Any, legal: Any) -> None:
    client.force_login(legal)
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):  # past the 5 of a sign-in
        asked = client.post(reverse("tokens:create"), {"name": "x", "days": 30})
    assert asked.status_code == 302 and "reauthenticate" in asked["Location"]
    assert not ApiToken.objects.exists()


def test_it_refuses_a_token_past_the_longest_life_and_superusers(
    client: Any, legal: Any, django_user_model: Any
) -> None:
    assert issue_in_portal(client, legal, days=91).status_code == 400
    assert not ApiToken.objects.exists()
    with pytest.raises(ValidationError, match="Superusers"):
        new_token(django_user_model.objects.create_superuser("root"), "x", 1)


def test_a_token_expires(legal: Any) -> None:
    token, secret = new_token(legal, "nightly", 1)
    assert api(secret).status_code == 200
    with time_machine.travel(token.expires_at + timedelta(seconds=1)):
        refused = api(secret)
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]
    assert refusals() == [{"prefix": token.prefix, "reason": "This token has expired."}]


def test_the_token_pages_are_for_users_with_a_role(client: Any, outsider: Any) -> None:
    assert client.get(reverse("tokens:list")).status_code == 302  # to the sign-in page
    client.force_login(outsider)
    assert client.get(reverse("tokens:list")).status_code == 403


def test_its_owner_revokes_it_in_the_portal_and_nobody_else_can(
    client: Any, legal: Any, auditor: Any
) -> None:
    token, secret = new_token(legal, "nightly", 30)
    client.force_login(auditor)
    assert client.post(reverse("tokens:revoke", args=[token.pk])).status_code == 404
    client.force_login(legal)
    assert client.post(reverse("tokens:revoke", args=[token.pk])).status_code == 302
    token.refresh_from_db()
    assert token.revoked_by == legal
    assert api(secret).status_code == 401
    assert AccessEvent.objects.filter(user=legal, action=AccessEvent.Action.TOKEN_REVOKED).exists()


def test_an_administrator_revokes_it_in_the_admin(client: Any, legal: Any, admin_user: Any) -> None:
    token, secret = new_token(legal, "nightly", 30)
    client.force_login(admin_user)
    action = {"action": "revoke_selected", "_selected_action": [token.pk]}
    assert client.post("/admin/clientwindow/apitoken/", action).status_code == 302
    token.refresh_from_db()
    assert token.revoked_by == admin_user and token.revoked_at is not None
    refused = api(secret)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    revoked = AccessEvent.objects.get(action=AccessEvent.Action.TOKEN_REVOKED)
    assert revoked.user == admin_user and revoked.detail["owner"] == legal.username


def test_it_records_the_last_use_at_most_once_a_minute(legal: Any) -> None:
    token, secret = new_token(legal, "nightly", 30)
    start = timezone.now()
    for seconds, expected in ((0, 0), (30, 0), (61, 61)):
        with time_machine.travel(start + timedelta(seconds=seconds), tick=False):
            assert api(secret).status_code == 200
        token.refresh_from_db()
        assert token.last_used_at == start + timedelta(seconds=expected)


def test_a_token_is_its_owner_and_no_more(legal: Any, outsider: Any) -> None:
    assert api(new_token(outsider, "x", 1)[1]).status_code == 403  # no role: no exports
    legal_secret = new_token(legal, "x", 1)[1]
    assert api(legal_secret).status_code == 200
    legal.is_active = False
    legal.save(update_fields=["is_active"])
    refused = api(legal_secret)
    assert refused.status_code == 401 and "deactivated" in refused.json()["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer a b",
        "Token",
        "bearer é",
        "Bearer \x00",
        "Bearer " + "x" * 5000,
        "Token   ",
    ],
)
def test_a_malformed_header_is_a_401_with_a_reason(db: None, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    refused = client.get(API)
    assert refused.status_code == 401 and "Malformed" in refused.json()["detail"]


def test_an_address_is_throttled_after_repeated_refusals(settings: Any, legal: Any) -> None:
    settings.API_TOKEN_FAILURE_LIMIT = 3
    secret = new_token(legal, "x", 30)[1]
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert [api(f"wrong-token-{n}").status_code for n in range(3)] == [401] * 3
        throttled = api(secret)  # even a good token waits: the address is cooling off
        assert throttled.status_code == 429 and throttled["Retry-After"] == "600"
    with time_machine.travel(start + timedelta(minutes=10, seconds=1), tick=False):
        assert api(secret).status_code == 200
    assert len(refusals()) == 3 and refusals()[0]["prefix"] == "wrong-to"


# What a WSGI server can hand over: ISO-8859-1 text (PEP 3333).
@hypothesis_settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(st.characters(max_codepoint=255), max_size=80))
def test_any_bearer_header_is_answered_without_a_500(settings: Any, db: None, token: str) -> None:
    settings.API_TOKEN_FAILURE_LIMIT = 10_000
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get(API).status_code == 401
