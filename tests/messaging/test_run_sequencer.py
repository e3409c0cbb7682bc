"""`manage.py run_sequencer` (messaging/sealer.py), run as the real process it is in production,
against this session's test database: woken by the webhook's NOTIFY, by its timer, back by
itself after its connections are cut, stopped by SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction

from messaging import inbox
from messaging.models import Channel, Delivery, DeliverySeal
from tests.conftest import superuser_connect
from tests.messaging.conftest import fixture_bytes

ROOT = Path(__file__).resolve().parents[2]
BODY = fixture_bytes("message-text-group__meta-docs-via-vaam-rs.json")


def sealer_env() -> dict[str, str]:
    name = settings.DATABASES["default"]["NAME"]
    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    return {**os.environ, "DATABASE_URL": url, "CLIENTWINDOW_LOCAL": "1"}


@pytest.fixture
def sealer(committed: None) -> Iterator[subprocess.Popen[bytes]]:
    """A run_sequencer whose timer never fires within a test: only a NOTIFY wakes it."""
    Channel.objects.create(phone_number_id="106540352242922", name="Desk")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_sequencer", "--idle", "600"],
        cwd=ROOT,
        env=sealer_env(),
        stderr=subprocess.PIPE,
    )
    try:  # killed even when it never listened: a failed start must not leave it running
        wait_until(lambda: listeners() == 1, "the sealer never listened")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def listeners() -> int:
    """Sessions listening on this test database (pg_stat_activity spans the cluster: a sealer
    that another xdist worker started listens on its own database)."""
    with superuser_connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query = %s",
            [f"LISTEN {inbox.SEALER_CHANNEL}"],
        ).fetchone()
    return int(row[0])


def wait_until(condition, message: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def deliver() -> None:
    """As the webhook view does: store, then wake the sealers."""
    with transaction.atomic():
        Delivery.objects.create(body=BODY, headers={})
        inbox.wake_sequencer()


def test_it_seals_a_delivery_when_the_webhook_notifies(sealer):
    deliver()
    wait_until(lambda: DeliverySeal.objects.count() == 1, "not sealed within 20 s")


def test_it_seals_what_was_stored_without_a_notification_when_it_starts(committed):
    Delivery.objects.create(body=BODY, headers={})
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_sequencer", "--idle", "0.2"], cwd=ROOT, env=sealer_env()
    )
    try:
        wait_until(lambda: DeliverySeal.objects.count() == 1, "not sealed within 20 s")
        Delivery.objects.create(body=BODY, headers={})  # no NOTIFY: the timer finds it
        wait_until(lambda: DeliverySeal.objects.count() == 2, "the timer did not seal it")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_it_resumes_by_itself_after_its_connections_are_cut(sealer):
    with superuser_connect() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND usename <> current_user"
        )
    connection.close()  # this test's own was cut too
    wait_until(lambda: listeners() == 1, "the sealer did not listen again")
    deliver()
    wait_until(lambda: DeliverySeal.objects.count() == 1, "not sealed after reconnecting")
    assert sealer.poll() is None


def test_it_stops_within_seconds_on_sigterm(sealer):
    started = time.monotonic()
    sealer.send_signal(signal.SIGTERM)
    assert sealer.wait(timeout=10) == 0
    assert time.monotonic() - started < 5


def test_it_exits_non_zero_on_an_unexpected_error_so_that_it_is_restarted(committed):
    """Not a database outage but a fault (here: a role that may not read the inbox): retrying
    in place would hide it; its supervisor restarts it and the log shows why."""
    auditor = settings.DATABASE_AUDITOR_ROLE
    env = sealer_env()
    env["DATABASE_URL"] = env["DATABASE_URL"].replace(
        f"//{settings.DATABASES['default']['USER']}", f"//{auditor}", 1
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "run_sequencer"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert b"InsufficientPrivilege" in done.stderr
