"""The account policy in a real browser: a lockout after repeated failures, the idle timeout,
and a re-authentication before an export (access/lockout.py, access/sessions.py). The live
server runs in this process, so time_machine moves its clock."""

from datetime import timedelta
from typing import Any

import time_machine
from django.conf import settings
from django.utils import timezone

from exports.models import Export
from tests.e2e.conftest import base_url, login, screenshot, submit_login
from tests.e2e.test_export_flow import jobs_inline  # noqa: F401  (a fixture)
from tests.e2e.test_review_flow import build_archive

PASSWORD = "correct horse battery staple"


def sign_in_attempt(page: Any, url: str, username: str, password: str) -> None:
    submit_login(page, url, username, password)
    page.wait_for_load_state()


def test_it_locks_a_name_out_after_repeated_failures(
    live_server: Any, page: Any, reviewer: Any, console_errors: list[str]
) -> None:
    url = base_url(live_server)
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        sign_in_attempt(page, url, reviewer.username, "wrong")
        assert "didn't match" in page.content()
    sign_in_attempt(page, url, reviewer.username, "wrong")
    sign_in_attempt(page, url, reviewer.username, PASSWORD)  # the right one, too late
    page.wait_for_selector(f"text=paused for {settings.LOGIN_COOLOFF_MINUTES} minutes")
    screenshot(page, "locked-out")
    assert page.url.startswith(f"{url}/login/")
    # the browser reports the 429 answers as errors: expected here, and only those
    assert console_errors and all("429" in error for error in console_errors)
    console_errors.clear()


def test_it_signs_out_an_idle_session(live_server: Any, page: Any, reviewer: Any) -> None:
    url = base_url(live_server)
    with time_machine.travel(timezone.now(), tick=True) as clock:
        login(page, live_server, reviewer)
        clock.shift(timedelta(minutes=settings.SESSION_IDLE_MINUTES, seconds=5))
        page.goto(f"{url}/")
        page.wait_for_selector(
            f"text=signed out after {settings.SESSION_IDLE_MINUTES} minutes of inactivity"
        )
        screenshot(page, "idle-timeout")
        assert page.url.startswith(f"{url}/login/")


def test_it_asks_for_the_password_again_before_an_export(
    live_server: Any,
    page: Any,
    auditor: Any,
    jobs_inline: None,  # noqa: F811
) -> None:
    build_archive()
    with time_machine.travel(timezone.now(), tick=True) as clock:
        login(page, live_server, auditor)
        page.click("nav.sections >> text=Conversations")
        page.click("table.list tbody tr >> nth=0 >> a")
        clock.shift(timedelta(seconds=settings.ACCOUNT_REAUTHENTICATION_TIMEOUT + 5))
        page.locator("details.exportform summary").click()
        page.select_option("#export-format", "csv")
        page.click("details.exportform button[type=submit]")
        page.wait_for_url("**/reauthenticate/**")
        assert not Export.objects.exists()  # nothing happens before the password
        screenshot(page, "reauthenticate")
        page.fill("#id_password", PASSWORD)
        page.click("main form button[type=submit]")
        page.wait_for_selector("#progress h2:has-text('Done')")
    assert Export.objects.get().state == Export.State.DONE
