"""Real-browser tests: Debian's Chromium, driven by Playwright, against the portal served by
pytest-django's `live_server` (a thread of this test process) over committed data.

The shape of a test::

    def test_it(live_server, page, reviewer):      # reviewer: tests/conftest.py, committed here
        login(page, live_server, reviewer)          # the real login form
        page.click("nav.sections >> text=Search")
        screenshot(page, "search")                  # var/test-artefacts/screenshots/search.png

Three things differ from the rest of the suite, all confined to the items under tests/e2e by the
`pytest_runtest_*` hooks below (conftest hooks only see the items of their own directory):

- `live_server` makes every test transactional: rows are committed, so that the server's thread
  sees them. Django would empty the database afterwards with `flush`, a TRUNCATE by the runtime
  role, which the archive's append-only tables refuse (that is their point), and which would also
  take the roles, permissions and chain head that the migrations wrote. Instead the superuser
  empties every table the migrations did not fill, with triggers off, as `committed` does.
- Playwright's sync API keeps an asyncio loop marked as running in this thread between calls, so
  Django's async-safety check would refuse every ORM call a test makes. These tests are
  deliberately synchronous; DJANGO_ALLOW_ASYNC_UNSAFE says so, for these tests only.
- The server listens on 127.0.0.1 (not "localhost", which Chromium would try as ::1 first).
"""

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import TransactionTestCase
from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize, sync_playwright
from psycopg import sql

from tests.conftest import TEST_DB, superuser_connect, wipe_archive

CHROMIUM = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")  # Debian's wrapper, its binary
ARTEFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artefacts" / "screenshots"
PASSWORD = "correct horse battery staple"  # make_user's, in tests/conftest.py
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000  # Playwright's default is 30 s; a portal on loopback answers in far less

# Filled by the migrations (and the post_migrate signal): kept across tests. archive_chainhead
# is reset, not emptied, by wipe_archive().
MIGRATED_TABLES = frozenset(
    {
        "django_migrations",
        "django_content_type",
        "auth_permission",
        "auth_group",
        "auth_group_permissions",
        "archive_chainhead",
        "django_q_schedule",
        "retention_retentionpolicy",  # the default policy; wipe_archive() removes the others
        "retention_disposablekind",  # retention's registries, written by the apps' migrations
        "retention_blanker",
    }
)


# --- Confining the differences to tests/e2e ---------------------------------------------------


def wipe_database() -> None:
    """Empty every table the migrations did not fill, as the superuser with triggers off.

    No CASCADE: if a kept table ever refers to an emptied one, this fails instead of emptying it.
    """
    connections.close_all()
    wipe_archive()
    with superuser_connect(TEST_DB) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
            if name not in MIGRATED_TABLES
        ]
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
                sql.SQL(", ").join(sql.Identifier(name) for name in tables)
            )
        )


def _wipe_instead_of_flush(self: TransactionTestCase) -> None:
    wipe_database()


@contextlib.contextmanager
def e2e_environment() -> Iterator[None]:
    env = {"DJANGO_ALLOW_ASYNC_UNSAFE": "true"}  # see the module docstring
    if not os.environ.get("DJANGO_LIVE_TEST_SERVER_ADDRESS"):
        env["DJANGO_LIVE_TEST_SERVER_ADDRESS"] = "127.0.0.1"  # read once, at live_server's start
    with (
        mock.patch.dict(os.environ, env),
        mock.patch.object(TransactionTestCase, "_fixture_teardown", _wipe_instead_of_flush),
    ):
        yield


# Hooks, not fixtures: they span every fixture's setup and teardown, whatever their order
# (pytest-django's database fixture is torn down after any fixture defined here would be).


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with e2e_environment():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with e2e_environment():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    with e2e_environment():
        return (yield)


CALL_FAILED = pytest.StashKey[bool]()  # for `page`: a failed test leaves a screenshot


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


# --- The browser ------------------------------------------------------------------------------


def chromium_path() -> str:
    for path in CHROMIUM:
        if os.access(path, os.X_OK):
            return path
    pytest.fail(
        f"Debian's Chromium is not installed (no {' or '.join(CHROMIUM)}): the browser tests in"
        " tests/e2e need it. Run `make setup` as root (`make test` does), or"
        " `apt-get install --no-install-recommends chromium`.",
        pytrace=False,
    )


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Headless Chromium, launched once for all of tests/e2e and closed on leaving it (a
    session-wide Playwright would leave its loop marked running for the tests that follow)."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        # Never a browser of Playwright's own: Debian's, and its sandbox off (we may be root).
        # http://localhost is where passkeys work without TLS; it is 127.0.0.1, never ::1.
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            chromium_sandbox=False,
            args=["--host-resolver-rules=MAP localhost 127.0.0.1"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def console_errors() -> list[str]:
    """What the page reported as errors: console errors (a Content-Security-Policy violation is
    one, and so is a failed load) and uncaught exceptions. `page` fails the test if any are left
    at its end; a test that provokes some on purpose checks and clears this list."""
    return []


@pytest.fixture
def page(
    browser: Browser, console_errors: list[str], request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh context (no cookies, 1280 x 900) and page per test."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    opened.on("console", on_console)
    opened.on("pageerror", lambda error: console_errors.append(f"uncaught: {error}"))
    yield opened
    if request.node.stash.get(CALL_FAILED, False):
        with contextlib.suppress(Exception):
            screenshot(opened, f"FAILED-{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}")
    context.close()
    assert console_errors == [], f"the browser reported errors: {console_errors}"


# --- Helpers ----------------------------------------------------------------------------------


def base_url(server: Any) -> str:
    """live_server or a URL string."""
    return str(getattr(server, "url", server)).rstrip("/")


def login(
    page: Page, server: Any, user: User | str, password: str = PASSWORD, lands_on: str = "/"
) -> None:
    """Log in through the real form (templates/registration/login.html) and wait for the page
    it lands on (the home page unless MFA_REQUIRED sends there first). `server`: live_server or
    its URL; `user`: a User or a username."""
    url = base_url(server)
    submit_login(page, url, user if isinstance(user, str) else user.get_username(), password)
    page.wait_for_url(f"{url}{lands_on}")


def submit_login(page: Page, url: str, username: str, password: str) -> None:
    """Fill in and submit the sign-in form, whatever it answers."""
    page.goto(f"{url}/login/")
    page.fill("#id_login", username)
    page.fill("#id_password", password)
    page.click("#login_form button[type=submit]")


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as var/test-artefacts/screenshots/NAME(.png); returns the path."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / (name if name.endswith(".png") else f"{name}.png")
    page.screenshot(path=str(path), full_page=True)
    return path
