"""Single sign-on in a real browser: through the test identity provider's own sign-in page."""

from typing import Any

from playwright.sync_api import Page

from tests.e2e.conftest import screenshot
from tests.oidc_provider import fixtures
from tests.oidc_provider.fixtures import PASSWORD, IdP

idp, sso = fixtures.idp, fixtures.sso  # the test IdP (a second process) and the portal set for it


def test_it_signs_in_through_the_identity_provider_with_the_mapped_role(
    live_server: Any, page: Page, sso: IdP
) -> None:
    sso.set(rita=["cw-legal", "staff-everyone"])
    page.goto(f"{live_server.url}/login/")
    page.click("#sso_login")  # a POST, redirected to the IdP: CSP form-action must admit it
    page.wait_for_url(f"{sso.url}/login/**")
    page.fill("#id_username", "rita")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.inner_text("header .who") == "rita · Legal"
    screenshot(page, "sso-signed-in")
