"""Real-browser tests: Debian's Chromium, driven by Playwright, against the portal served from
this test process on a loopback port, over committed data in the test database.

pytest-django's `live_server` would flush the database with TRUNCATE after each test, which the
archive's append-only tables refuse (that is the point of them); so the server here is a plain
WSGI server on a thread, and the data is committed and wiped as `tests/conftest.py` does.
"""

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from django.contrib.auth.models import Group, User
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections

from clientwindow import roles
from tests.conftest import superuser_connect, wipe_archive

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
# thread with a running loop unless told that this is deliberate. Only these tests say so.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

ARTEFACTS = Path(__file__).parents[2] / "var" / "test-artefacts" / "screenshots"
PASSWORD = "correct horse battery staple"
# Work tables the e2e tests fill, emptied after each test (as the superuser: the access log
# and the review decisions are append-only for everyone else).
WORK_TABLES = (
    "auth_user, review_tag, review_lexiconpolicy, review_samplingpolicy, review_lexiconscan,"
    " auditlog_logentry, django_session"
)


def chromium_path() -> str:
    for candidate in ("/usr/bin/chromium", "/usr/lib/chromium/chromium"):
        if Path(candidate).exists():
            return candidate
    pytest.fail("Chromium is not installed: run `make setup` (it installs Debian's chromium).")


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def portal(django_db_setup: None, django_db_blocker: Any, settings: Any) -> Iterator[str]:
    """The portal on a free loopback port, reading and writing the committed test database."""
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.SECURE_SSL_REDIRECT = False
    with django_db_blocker.unblock():
        server = make_server("127.0.0.1", 0, WSGIHandler(), WSGIServer, QuietHandler)

        def serve() -> None:
            try:
                server.serve_forever(poll_interval=0.05)
            finally:
                connections.close_all()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            thread.join(timeout=10)
            server.server_close()
            connections.close_all()
            wipe_archive()
            with superuser_connect() as conn:
                conn.execute("SET session_replication_role = replica")
                conn.execute(f"TRUNCATE {WORK_TABLES} RESTART IDENTITY CASCADE")


@pytest.fixture
def people(portal: str) -> dict[str, User]:
    """Committed users with real passwords (the shared fixtures live inside a rolled-back
    transaction, which the server's thread would never see)."""
    made = {}
    for username, role in (("rey", roles.REVIEWER), ("ada", roles.ADMINISTRATOR)):
        user = User.objects.create_user(
            username, password=PASSWORD, is_staff=role == "Administrator"
        )
        user.groups.set(Group.objects.filter(name=role))
        made[username] = user
    return made


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context per test; any console error (a CSP violation is one) fails it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: errors.append(str(e)))
    yield opened
    context.close()
    assert errors == [], errors


def login(page: Any, portal: str, username: str) -> None:
    page.goto(f"{portal}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{portal}/")


def screenshot(page: Any, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def clean_artefacts() -> None:
    shutil.rmtree(ARTEFACTS, ignore_errors=True)
