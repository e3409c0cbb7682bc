"""The API reference (/api/docs/) in a real browser: Swagger UI renders the schema, and the
page's Content-Security-Policy blocks nothing it needs."""

from typing import Any

from django.contrib.auth.models import User
from playwright.sync_api import Page

from tests.e2e.conftest import login, screenshot
from tests.e2e.test_login import RECORD_CSP_VIOLATIONS


def test_it_shows_the_schema_under_the_portal_csp(
    live_server: Any, page: Page, reviewer: User, console_errors: list[str]
) -> None:
    page.context.add_init_script(RECORD_CSP_VIOLATIONS)
    login(page, live_server, reviewer)

    page.goto(f"{live_server.url}/api/docs/")
    page.locator(".swagger-ui .info .title").wait_for()
    page.locator(".opblock-summary-path >> text=/api/v1/exports/").first.wait_for()
    page.wait_for_load_state("networkidle")

    assert "ClientWindow API" in page.inner_text(".swagger-ui .info .title")
    assert page.evaluate("window.__cspViolations") == []
    assert console_errors == []
    screenshot(page, "api-reference.png")


def test_it_sends_a_browser_without_a_session_to_the_login_page(
    live_server: Any, page: Page
) -> None:
    page.goto(f"{live_server.url}/api/docs/")

    page.wait_for_url(f"{live_server.url}/login/?next=/api/docs/")
