"""A feed consumer that restarts anywhere, while capture runs, sees every record once, in order.

Two writers run in threads for about two seconds: the sequencer sealing webhook bodies through
the real path (messaging.sequencer.process_deliveries), and a slow appender that holds the chain
head's lock for a few milliseconds before each commit (ledger.append inside a transaction that
sleeps), so that pages are read while an append is open. The consumer, in the test's thread,
reads pages of random sizes (sometimes long-polling), keeps its cursor only once a page is
processed, and at random points "crashes": drops its client and a page it had not yet
processed, and resumes from its stored cursor with a fresh token. At the end, it must have
processed seq 0, 1, 2, ... up to the ledger's end, each once, each with the leaf hash stored.
"""

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection, transaction

from access import roles
from archive import ledger
from archive.envelope import Fact
from messaging import simulator
from messaging.models import Channel, Delivery
from messaging.sequencer import process_deliveries
from tests.api.conftest import api
from tests.conftest import superuser_connect
from tests.review.conftest import NOW, inbound

CAPTURE_SECONDS = 2.0
URL = "/api/v1/feed/"


@pytest.fixture
def administrator(committed: None) -> Iterator[User]:
    user = User.objects.create_user("feed-consumer", password="pw")
    user.groups.set(Group.objects.filter(name=roles.ADMINISTRATOR))
    Channel.objects.create(name="Desk", phone_number_id=simulator.DEMO_CHANNEL["phone_number_id"])
    try:
        yield user
    finally:
        with superuser_connect() as conn:  # access events are append-only: as the superuser
            conn.execute("SET session_replication_role = replica")
            conn.execute("TRUNCATE auth_user, review_accessevent RESTART IDENTITY CASCADE")


def writer(stop: threading.Event, step: Callable[[int], None]) -> threading.Thread:
    def run() -> None:
        n = 0
        try:
            while not stop.is_set():
                step(n)
                n += 1
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def capture(n: int) -> None:
    for k in range(3):
        body = {"id": f"wamid.once-{n}-{k}", "timestamp": str(NOW + n), "type": "text"}
        message = {**body, "text": {"body": f"message {n}.{k}"}}
        Delivery.objects.create(body=inbound(f"4477009{n % 50:05d}", "Client", message), headers={})
    process_deliveries()


def slow_append(n: int) -> None:
    with transaction.atomic():
        ledger.append([Fact("test.probe", {"n": n}, {"note": b"probe"})])
        time.sleep(0.003)  # commit later, holding the chain head


@pytest.mark.parametrize("seed", [19, 2026])
def test_a_restarting_consumer_sees_every_record_once_in_order(
    administrator: User, seed: int
) -> None:
    rng = random.Random(seed)
    stop = threading.Event()
    threads = [writer(stop, capture), writer(stop, slow_append)]
    processed: list[dict[str, Any]] = []
    stored_cursor: str | None = None  # what the consumer keeps across crashes
    client = api(administrator)
    deadline = time.monotonic() + CAPTURE_SECONDS
    try:
        while True:
            running = time.monotonic() < deadline
            if not running and not stop.is_set():
                stop.set()
                for thread in threads:
                    thread.join()
            query: dict[str, Any] = {"limit": rng.randint(1, 40)}
            if stored_cursor is not None:
                query["after"] = stored_cursor
            if running and rng.random() < 0.1:
                query["wait"] = 1
            answer = client.get(URL, query)
            assert answer.status_code == 200, answer.content
            page = answer.json()
            if rng.random() < 0.15:  # crash before processing: the page is lost, not the cursor
                client = api(administrator)
                continue
            processed += page["results"]
            stored_cursor = page["cursor"]
            if not running and not page["results"]:
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    size = connection.cursor()
    size.execute("SELECT seq, leaf_hash FROM archive_ledgerentry ORDER BY seq")
    expected = [(seq, bytes(leaf).hex()) for seq, leaf in size.fetchall()]
    assert len(expected) > 50  # capture really ran
    assert [(r["seq"], r["leaf_hash"]) for r in processed] == expected
    assert {"message", "test.probe", "webhook.delivery"} <= {r["kind"] for r in processed}
