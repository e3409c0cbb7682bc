"""Second factors in a real browser: a user made to enrol at first sign-in adds a passkey with
Chromium's virtual authenticator and signs in with it alone; another adds an authenticator app
and signs in with a code computed here. Over http://localhost: the origin passkeys accept
without TLS (tests/e2e/conftest.py maps it to 127.0.0.1)."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.contrib.auth.models import User
from playwright.sync_api import Page

from tests.e2e.conftest import login, screenshot


@pytest.fixture
def portal(live_server: Any, settings: Any) -> str:
    """The live server at http://localhost, with second factors required of everyone."""
    settings.MFA_REQUIRED = "all"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    return live_server.url.replace("127.0.0.1", "localhost")


@pytest.fixture
def authenticator(page: Page) -> Iterator[str]:
    """Chromium's virtual authenticator: a platform passkey that verifies its user."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
    }
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
    yield added["authenticatorId"]
    cdp.detach()


def log_out(page: Page, portal: str) -> None:
    page.goto(f"{portal}/accounts/2fa/")
    page.click("nav[aria-label=Account] button[type=submit]")
    page.wait_for_url(f"{portal}/login/")


def test_a_passkey_enrolled_at_first_sign_in_signs_in_alone(
    portal: str, page: Page, reviewer: User, authenticator: str
) -> None:
    login(page, portal, reviewer, lands_on="/accounts/2fa/")
    assert page.locator("main [role=status]", has_text="needs a second factor").count() == 1

    page.goto(f"{portal}/accounts/2fa/webauthn/add/")
    page.check("#id_passwordless")
    page.click("#mfa_webauthn_add")
    page.wait_for_url(lambda url: "/webauthn/add/" not in url)
    assert Authenticator.objects.filter(user=reviewer, type="webauthn").count() == 1
    screenshot(page, "passkey-added")

    log_out(page, portal)
    page.click("#passkey_login")
    page.wait_for_url(f"{portal}/")
    assert "rey" in page.inner_text("nav[aria-label=Account] .who")


def test_an_authenticator_app_enrolled_at_first_sign_in_asks_for_its_code(
    portal: str, page: Page, reviewer: User
) -> None:
    with time_machine.travel(time.time(), tick=True) as traveller:
        login(page, portal, reviewer, lands_on="/accounts/2fa/")
        page.goto(f"{portal}/accounts/2fa/totp/activate/")
        secret = page.input_value("#authenticator_secret")
        page.fill("#id_code", code(secret))
        page.click("main form button[type=submit]")
        page.wait_for_url(lambda url: "/totp/activate/" not in url)
        screenshot(page, "totp-added")

        log_out(page, portal)
        traveller.shift(30)  # the enrolment's code is spent: the next window's
        login(page, portal, reviewer, lands_on="/accounts/2fa/authenticate/")
        page.fill("#id_code", code(secret))
        page.click("main form button[type=submit]")
        page.wait_for_url(f"{portal}/")


def code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))
