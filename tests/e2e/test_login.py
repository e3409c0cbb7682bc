"""Logging in, in a real browser; and the Content-Security-Policy blocks nothing of our own."""

from typing import Any

from django.contrib.auth.models import User
from playwright.sync_api import Page

from tests.e2e.conftest import login, screenshot

# Reports a violation to the page's own record as well as to the console (init scripts run
# outside the page's CSP).
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.effectiveDirective}: ${e.blockedURI || "inline"}`);
});
"""

INLINE_SCRIPT = """() => {
  const script = document.createElement("script");
  script.textContent = "document.title = 'inline script ran';";
  document.head.append(script);
}"""


def test_it_logs_a_reviewer_in_to_the_home_page(
    live_server: Any, page: Page, reviewer: User
) -> None:
    login(page, live_server, reviewer)

    assert page.url == f"{live_server.url}/"
    assert "rey" in page.inner_text("nav[aria-label=Account] .who")
    assert page.locator("nav.sections").is_visible()
    screenshot(page, "home.png")


def test_a_wrong_password_stays_on_the_login_page_with_the_error(
    live_server: Any, page: Page, reviewer: User
) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_login", "rey")
    page.fill("#id_password", "wrong horse battery staple")
    page.click("#login_form button[type=submit]")

    alert = page.locator("main [role=alert]")
    alert.wait_for()
    assert "didn't match" in alert.inner_text()
    assert page.url == f"{live_server.url}/login/"
    assert page.input_value("#id_login") == "rey"
    assert page.locator("nav[aria-label=Account]").count() == 0


def test_the_content_security_policy_blocks_nothing_of_ours(
    live_server: Any, page: Page, reviewer: User, console_errors: list[str]
) -> None:
    page.context.add_init_script(RECORD_CSP_VIOLATIONS)

    response = page.goto(f"{live_server.url}/login/")
    assert response is not None and response.ok
    policy = response.headers.get("content-security-policy")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__cspViolations") == []
    assert console_errors == []

    login(page, live_server, reviewer)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__cspViolations") == []
    assert console_errors == []

    if policy:  # and the watch above would have seen a violation: provoke one
        page.evaluate(INLINE_SCRIPT)
        page.wait_for_function("window.__cspViolations.length > 0")
        assert page.title() != "inline script ran"
        assert page.evaluate("window.__cspViolations") == ["script-src-elem: inline"]
        assert any("Content Security Policy" in error for error in console_errors)
        console_errors.clear()  # provoked on purpose; `page` fails the test on any left
