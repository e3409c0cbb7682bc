"""Change feed benchmark: one consumer following /api/v1/feed/ from the start of the ledger.

The ledger is built through the real write path (tests/performance/bench_review.py's webhook
bodies on three channels, 100 messages each, stored as the webhook stores them and sealed by
messaging.sequencer.process_deliveries()), then VACUUM ANALYZE. Then, three runs each, in
rotating order:

1. the API: an Administrator's token (every kind), pages of 1,000 (the maximum) through the whole
   ledger with django.test's client in-process (authentication, permission, the page's queries,
   JSON rendering, one READ_FEED access event per page); also a Reviewer (messages and the like
   only: the kind filter);
2. the bare SQL of the same pages: the entries page and its contents, fetched, nothing decoded.

Every API run must return seq 0..n-1 once each, in order. Also measured: one long-poll tick (the
chain head read), and how long a waiting long poll takes to return a record appended meanwhile.

Environment: BENCH_FEED_MESSAGES (50,000), BENCH_FEED_PROFILE=1 to print a cProfile of one
Administrator pass.
"""

import cProfile
import io
import os
import pstats
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client

from access import roles
from api import feed
from archive import ledger
from archive.envelope import Fact
from messaging.models import Channel
from messaging.sequencer import process_deliveries
from tests.conftest import superuser_connect
from tests.performance.bench_review import CHANNELS, Archive
from tests.performance.conftest import Figure, rate, record, say, seconds, store_deliveries, table

MESSAGES = int(os.environ.get("BENCH_FEED_MESSAGES", "50000"))
PAGE = 1000
RUNS = 3
URL = "/api/v1/feed/"


@pytest.fixture
def people(empty_ledger: None) -> Iterator[dict[str, User]]:
    made = {}
    for name, role in (("feed-admin", roles.ADMINISTRATOR), ("feed-reviewer", roles.REVIEWER)):
        made[role] = User.objects.create_user(name, password="pw")
        made[role].groups.set(Group.objects.filter(name=role))
    try:
        yield made
    finally:
        with superuser_connect() as conn:  # access events are append-only: as the superuser
            conn.execute("SET session_replication_role = replica")
            conn.execute("TRUNCATE auth_user, review_accessevent RESTART IDENTITY CASCADE")


def build() -> float:
    for channel in CHANNELS:
        Channel.objects.create(**channel)
    started = time.perf_counter()
    chunk: list[tuple[bytes, int]] = []
    for body in Archive(MESSAGES).deliveries(100):
        chunk.append(body)
        if len(chunk) == 100:
            store_deliveries(chunk)
            process_deliveries()
            chunk = []
    store_deliveries(chunk)
    process_deliveries()
    with superuser_connect() as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def through_api(user: User) -> tuple[float, list[int]]:
    client = Client()
    client.force_login(user)
    seqs: list[int] = []
    after = "-1"
    started = time.perf_counter()
    while True:
        page = client.get(URL, {"after": after, "limit": PAGE}).json()
        seqs += [r["seq"] for r in page["results"]]
        if page["next"] is None:
            return time.perf_counter() - started, seqs
        after = page["cursor"]


def bare_sql() -> tuple[float, int]:
    count, after = 0, -1
    started = time.perf_counter()
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT seq, kind, envelope, leaf_hash FROM archive_ledgerentry"
                " WHERE seq > %s ORDER BY seq LIMIT %s",
                [after, PAGE],
            )
            rows = cursor.fetchall()
            if not rows:
                return time.perf_counter() - started, count
            cursor.execute(
                "SELECT seq, name, content FROM archive_content WHERE seq = ANY(%s)",
                [[row[0] for row in rows]],
            )
            cursor.fetchall()
            count += len(rows)
            after = rows[-1][0]


def wake_up_latency(user: User) -> float:
    """From an append to the return of a long poll that was waiting for it."""
    tail = feed.chain_size() - 1
    answered: dict[str, Any] = {}

    def poll() -> None:
        client = Client()
        client.force_login(user)
        answered["page"] = client.get(URL, {"after": tail, "wait": 10}).json()
        answered["at"] = time.perf_counter()
        connection.close()

    waiting = threading.Thread(target=poll)
    waiting.start()
    time.sleep(1.0)  # the poll is waiting
    appended = time.perf_counter()
    ledger.append([Fact("bench.probe", {"n": 1})])
    waiting.join()
    assert [r["seq"] for r in answered["page"]["results"]] == [tail + 1]
    return float(answered["at"] - appended)


def test_bench_feed(people: dict[str, User], server_settings: str) -> None:
    say(f"\n== change feed: {MESSAGES:,} messages through the real write path ({server_settings})")
    took = build()
    size = feed.chain_size()
    say(f"built {size:,} ledger entries in {seconds(took)}")
    admin, reviewer = people[roles.ADMINISTRATOR], people[roles.REVIEWER]
    api_times, sql_times, reviewer_times = [], [], []
    reviewer_count = 0
    for run in range(RUNS):
        order = ["api", "sql", "reviewer"]
        for what in order[run % 3 :] + order[: run % 3]:
            if what == "api":
                elapsed, seqs = through_api(admin)
                assert seqs == list(range(size)), "every record once, in order"
                api_times.append(elapsed)
            elif what == "sql":
                elapsed, count = bare_sql()
                assert count == size
                sql_times.append(elapsed)
            else:
                elapsed, seqs = through_api(reviewer)
                assert seqs == sorted(set(seqs))
                reviewer_count = len(seqs)
                reviewer_times.append(elapsed)
    ours = size / statistics.median(api_times)
    ceiling = size / statistics.median(sql_times)
    reviewed = reviewer_count / statistics.median(reviewer_times)

    if os.environ.get("BENCH_FEED_PROFILE"):
        profile = cProfile.Profile()
        profile.runcall(through_api, admin)
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(30)
        say(out.getvalue())

    ticks = []
    for _ in range(200):
        started = time.perf_counter()
        feed.chain_size()
        ticks.append(time.perf_counter() - started)
    tick = statistics.median(ticks)
    latency = wake_up_latency(admin)

    say(
        table(
            ["measure", "median of 3", "records/s"],
            [
                [
                    "API, Administrator (every kind)",
                    seconds(statistics.median(api_times)),
                    rate(ours),
                ],
                [
                    "API, Reviewer (message kinds)",
                    seconds(statistics.median(reviewer_times)),
                    rate(reviewed),
                ],
                ["bare SQL, same pages", seconds(statistics.median(sql_times)), rate(ceiling)],
            ],
            title=f"== {size:,} records in pages of {PAGE:,} (Reviewer: {reviewer_count:,})",
        )
    )
    say(f"long-poll tick (chain head read): {seconds(tick)} median; every {feed.TICK} s")
    say(f"a waiting long poll returned an appended record after {seconds(latency)}")
    record(
        Figure(
            "feed: records/s to one consumer (pages of 1,000)",
            ours,
            "records/s",
            ceiling,
            "bare SQL, same pages",
            target=5000,
        )
    )
