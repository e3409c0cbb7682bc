"""Second factors (clientwindow/accounts.py and allauth.mfa): enrolment is forced where
MFA_REQUIRED says, a TOTP code works once, and a WebAuthn assertion made for another origin is
refused. The browser side is tests/e2e/test_mfa.py."""

import base64
import hashlib
import json
import time
from typing import Any

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, hotp_value
from allauth.mfa.webauthn.internal.auth import WebAuthn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from fido2.cose import CoseKey
from fido2.webauthn import (
    Aaguid,
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorData,
    CollectedClientData,
)

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
RP_ID = "testserver"  # the test client's host, which allauth takes as the relying party's id
FLAGS = AuthenticatorData.FLAG


@pytest.fixture
def mfa_required(settings: Any) -> Any:
    settings.MFA_REQUIRED = "all"
    return settings


def totp_code(secret: str = SECRET) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def sign_in_with_password(client: Client, username: str) -> None:
    response = client.post(reverse("login"), {"login": username, "password": PASSWORD})
    assert response.status_code == 302


# --- Enrolment at first sign-in --------------------------------------------------------------


def test_it_sends_a_user_without_a_second_factor_to_enrolment(mfa_required, client, reviewer):
    sign_in_with_password(client, "rey")
    response = client.get(reverse("home"))
    assert response["Location"] == reverse("mfa_index")
    assert client.get(reverse("mfa_index")).status_code == 200
    assert client.get(reverse("mfa_activate_totp")).status_code == 200


def test_it_keeps_the_admin_behind_enrolment(mfa_required, client, admin_user):
    client.force_login(admin_user)
    assert client.get(reverse("admin:index"))["Location"] == reverse("mfa_index")


def test_it_lets_a_user_with_an_authenticator_app_through(mfa_required, client, reviewer):
    TOTP.activate(reviewer, SECRET)
    client.force_login(reviewer)
    assert client.get(reverse("home")).status_code == 200


def test_recovery_codes_alone_are_not_a_second_factor(mfa_required, client, reviewer):
    Authenticator.objects.create(
        user=reviewer, type=Authenticator.Type.RECOVERY_CODES, data={"seed": "00" * 20}
    )
    client.force_login(reviewer)
    assert client.get(reverse("home"))["Location"] == reverse("mfa_index")


@pytest.mark.parametrize(("role", "redirected"), [("reviewer", False), ("admin_user", True)])
def test_administrators_only_asks_administrators(settings, request, client, role, redirected):
    settings.MFA_REQUIRED = "administrators"
    client.force_login(request.getfixturevalue(role))
    assert (client.get(reverse("home")).status_code == 302) is redirected


def test_it_signs_out_a_user_who_has_not_enrolled(mfa_required, client, reviewer):
    client.force_login(reviewer)
    client.post(reverse("logout"))
    assert "_auth_user_id" not in client.session


def test_a_misspelt_mfa_required_is_a_clear_error(settings, client, reviewer):
    settings.MFA_REQUIRED = "everyone"
    client.force_login(reviewer)
    with pytest.raises(Exception, match="MFA_REQUIRED must be one of all, administrators, off"):
        client.get(reverse("home"))


# --- Sign-in: allauth's pages under the portal's names ---------------------------------------


def test_it_has_no_public_sign_up(client):
    response = client.get(reverse("account_signup"))
    assert "Sign Up Closed" in response.content.decode() or response.status_code != 200


def test_the_admin_login_sends_to_the_portal_login(client):
    response = client.get(reverse("admin:login"))
    assert response["Location"].startswith(reverse("login") + "?next=")


# --- TOTP ----------------------------------------------------------------------------------


@time_machine.travel("2026-12-03 10:00:05Z", tick=False)
def test_a_totp_code_signs_in_once(mfa_required, reviewer):
    TOTP.activate(reviewer, SECRET)
    first, second = Client(), Client()

    sign_in_with_password(first, "rey")
    response = first.post(reverse("mfa_authenticate"), {"code": totp_code()})
    assert response["Location"] == reverse("home")
    assert first.get(reverse("home")).status_code == 200

    sign_in_with_password(second, "rey")  # the password again, and the same code in its window
    response = second.post(reverse("mfa_authenticate"), {"code": totp_code()})
    assert response.status_code == 200
    assert "Incorrect code." in response.content.decode()
    assert second.get(reverse("home")).status_code == 302


# --- WebAuthn: an assertion made for another origin -----------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftwareKey:
    """A WebAuthn authenticator in a few lines: an ES256 key pair and a credential id."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = b"clientwindow-test-credential"

    def register(self, user: User) -> None:
        public_key = CoseKey.for_name("ES256").from_cryptography_key(self.private_key.public_key())
        credential = AttestedCredentialData.create(Aaguid.NONE, self.credential_id, public_key)
        auth_data = AuthenticatorData.create(
            hashlib.sha256(RP_ID.encode()).digest(), FLAGS.UP | FLAGS.UV | FLAGS.AT, 0, credential
        )
        client_data = CollectedClientData.create("webauthn.create", b"0" * 16, f"https://{RP_ID}")
        response = {
            "clientDataJSON": b64url(bytes(client_data)),
            "attestationObject": b64url(bytes(AttestationObject.create("none", auth_data, {}))),
        }
        registration = {"id": b64url(self.credential_id), "rawId": b64url(self.credential_id)}
        registration |= {"type": "public-key", "response": response, "clientExtensionResults": {}}
        WebAuthn.add(user, "test key", registration)

    def assert_(self, challenge: str, origin: str) -> dict[str, Any]:
        client_data = json.dumps(
            {"type": "webauthn.get", "challenge": challenge, "origin": origin}
        ).encode()
        auth_data = (
            hashlib.sha256(RP_ID.encode()).digest()
            + bytes([FLAGS.UP | FLAGS.UV])
            + (1).to_bytes(4, "big")
        )
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.private_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        response = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
            "userHandle": None,
        }
        assertion = {"id": b64url(self.credential_id), "rawId": b64url(self.credential_id)}
        return assertion | {"type": "public-key", "response": response}


@pytest.mark.parametrize(
    ("origin", "signed_in"), [(f"https://{RP_ID}", True), ("https://evil.example", False)]
)
def test_a_webauthn_assertion_counts_only_for_our_origin(mfa_required, reviewer, origin, signed_in):
    key = SoftwareKey()
    key.register(reviewer)
    client = Client()
    sign_in_with_password(client, "rey")
    page = client.get(reverse("mfa_authenticate"))
    challenge = page.context["js_data"]["request_options"]["publicKey"]["challenge"]

    response = client.post(
        reverse("mfa_authenticate"), {"credential": json.dumps(key.assert_(challenge, origin))}
    )

    assert (response.status_code == 302) is signed_in
    assert (client.get(reverse("home")).status_code == 200) is signed_in
    if not signed_in:
        assert "Incorrect code." in response.content.decode()
