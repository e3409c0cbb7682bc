"""Single sign-on against a real OpenID Connect provider on loopback (tests/oidc_provider)."""

import logging
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User
from django.core.exceptions import ImproperlyConfigured
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from clientwindow.sso import config as sso_config
from clientwindow.sso.oidc import Refused, verify_id_token
from review.models import AccessEvent
from tests.oidc_provider import fixtures
from tests.oidc_provider.fixtures import IdP, sign_in_at_idp

pytestmark = pytest.mark.django_db
idp, sso = fixtures.idp, fixtures.sso  # the test IdP (a second process) and the portal set for it


def start(client: Client) -> str:
    response = client.post(reverse("openid_connect_login", kwargs={"provider_id": "sso"}))
    assert response.status_code == 302, response.content[:300]
    location: str = response["Location"]
    return location


def sign_in(client: Client, idp: IdP, username: str) -> Any:
    return client.get(sign_in_at_idp(idp, username, start(client)))


def roles(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def test_it_offers_the_sign_in_button_only_when_an_issuer_is_set(
    sso: IdP, rf: Any, settings: Any
) -> None:
    request = rf.get("/login/")
    request.user = AnonymousUser()
    button = render_to_string("account/_sso.html", request=request)
    assert 'action="/accounts/oidc/sso/login/?process=login"' in button
    assert "Sign in with Test IdP" in button
    settings.SOCIALACCOUNT_PROVIDERS = sso_config.providers(
        issuer="", client_id="", secret="", scopes="", name=""
    )
    assert "<form" not in render_to_string("account/_sso.html", request=request)


def test_it_creates_the_user_with_the_roles_the_claim_maps_to(sso: IdP, client: Client) -> None:
    sso.set(rita=["cw-reviewers", "everyone"])
    response = sign_in(client, sso, "rita")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(User.objects.get(username="rita").pk)
    assert roles("rita") == {"Reviewer"}


def test_it_sets_the_roles_again_at_every_sign_in(sso: IdP, client: Client) -> None:
    sso.set(adam=["cw-admins"])
    sign_in(client, sso, "adam")
    adam = User.objects.get(username="adam")
    assert (roles("adam"), adam.is_staff, adam.is_superuser) == ({"Administrator"}, True, False)
    adam.groups.add(Group.objects.create(name="Newsletter"))  # not a role: left alone
    sso.set(adam=["cw-auditors"])
    sign_in(Client(), sso, "adam")
    adam.refresh_from_db()
    assert (roles("adam"), adam.is_staff) == ({"Auditor", "Newsletter"}, False)


def test_it_creates_the_user_without_an_address_another_account_has(
    sso: IdP, client: Client, make_user: Any
) -> None:
    local = make_user("lena.local")
    local.email = "lena@idp.example"  # the address the IdP gives lena
    local.save(update_fields=["email"])
    sso.set(lena=["cw-legal"])
    assert sign_in(client, sso, "lena").status_code == 302
    assert (roles("lena"), User.objects.get(username="lena").email) == ({"Legal"}, "")


def test_it_gives_an_unmapped_user_no_role(sso: IdP, client: Client) -> None:
    sso.set(nora=["somewhere-else"])
    sign_in(client, sso, "nora")
    assert roles("nora") == set()
    assert b"no role" in client.get(reverse("home"), follow=True).content.lower()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("tampered", "the ID token&#x27;s signature does not verify"),
        ("wrong_audience", "the ID token was issued to another application"),
        ("expired", "the ID token has expired"),
        ("wrong_nonce", "the ID token&#x27;s nonce is not this sign-in&#x27;s"),
    ],
)
def test_it_refuses_a_bad_id_token(
    sso: IdP, client: Client, caplog: pytest.LogCaptureFixture, mode: str, reason: str
) -> None:
    sso.set(mode, lena=["cw-reviewers"])
    with caplog.at_level(logging.WARNING, logger="clientwindow.security"):
        response = sign_in(client, sso, "lena")
    assert response.status_code == 401  # allauth's status for a refused third-party sign-in
    assert reason in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not User.objects.filter(username="lena").exists()
    assert "SSO sign-in refused" in caplog.text
    event = AccessEvent.objects.get(action=AccessEvent.Action.LOGIN_FAILED)
    assert event.detail["method"] == "sso"


def test_it_refuses_a_replayed_state(sso: IdP, client: Client) -> None:
    sso.set(rita=["cw-reviewers"])
    callback = sign_in_at_idp(sso, "rita", start(client))
    assert client.get(callback).status_code == 302
    replayed = client.get(callback)
    assert replayed.status_code == 401
    assert "already completed or has expired" in replayed.content.decode()


@given(st.text(max_size=300))
@hypothesis_settings(max_examples=60, deadline=None)
def test_it_refuses_anything_that_is_not_a_good_id_token(token: str) -> None:
    with pytest.raises(Refused):
        verify_id_token(token, jwks={"keys": []}, issuer="https://idp", client_id="cw")


def test_it_refuses_a_role_map_naming_no_role_of_ours() -> None:
    assert sso_config.role_map("a=Reviewer, b=Administrator") == {
        "a": "Reviewer",
        "b": "Administrator",
    }
    with pytest.raises(ImproperlyConfigured, match="OIDC_ROLE_MAP"):
        sso_config.role_map("cw-admins=superuser")


def test_it_refuses_password_sign_in_but_for_break_glass_accounts(
    client: Client, make_user: Any, settings: Any
) -> None:
    settings.LOCAL_LOGIN = False
    settings.BREAK_GLASS_USERS = ["glass"]
    settings.AUTHENTICATION_BACKENDS = ["clientwindow.sso.backends.LocalLoginPolicy"]
    make_user("glass", "Administrator")
    make_user("rita", "Reviewer")
    password = "correct horse battery staple"
    refused = client.post(reverse("login"), {"login": "rita", "password": password}, follow=True)
    assert "Password sign-in is switched off" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    client.post(reverse("login"), {"login": "glass", "password": password})
    assert client.session["_auth_user_id"] == str(User.objects.get(username="glass").pk)
