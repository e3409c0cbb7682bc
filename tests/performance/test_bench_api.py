"""API benchmark: a long conversation's messages paged through /api/v1/, beside the bare SQL.

The archive is built through the real write path, as tests/performance/test_bench_review.py
builds its own: Meta-shaped webhook bodies from tests/performance/bench_review.py's Archive
(one client with a conversation of BENCH_API_BIG messages, every outbound one with its
sent/delivered/read statuses and a few reactions, the rest of the archive spread over ~2,000
other clients), stored as Delivery rows and sealed by messaging.sequencer.process_deliveries(),
with a signed checkpoint every 100,000 messages; then VACUUM ANALYZE.

Requests go through Django's test client (rest_framework.test.APIClient, in process, a bearer
token of a reviewer): authentication, the access check, the page, decorate(), the access event
and JSON rendering are all timed; the network and a WSGI server are not.

1. The big conversation read from the start to its end, BENCH_API_LIMIT (1,000) messages a
   call, following `next`: messages/s. Beside it, in the same run, the bare SQL of the same
   pages: (a) the page's keyset query alone (`seq > after ORDER BY seq LIMIT n + 1`, with the
   leaf hash), and (b) every statement the API sent for the page, replayed as captured (the
   decoration's statuses, reactions, names, attachments, checkpoints), without Python.
   The seqs read through the API must be exactly those of the bare pages.
2. One page (BENCH_API_PAGE, 100 messages: the default limit) at BENCH_API_CALLS random
   positions in the conversation: p50/p95 of the call, beside the bare keyset query at the same
   positions.

Environment: BENCH_API_MESSAGES (the archive: 120,000 by default), BENCH_API_BIG (the long
conversation: 100,000), BENCH_API_LIMIT (1,000), BENCH_API_PAGE (100), BENCH_API_CALLS (200),
BENCH_API_PER_DELIVERY (100 messages per webhook body), BENCH_API_PROFILE=1 to print a cProfile
of three calls (sorted by BENCH_PROFILE_SORT, cumulative by default).
"""

import cProfile
import io
import os
import pstats
import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from access import roles
from archive.checkpoints import create_checkpoint
from clientwindow.tokens import new_token
from messaging.models import Channel, Conversation, ConversationSummary
from messaging.sequencer import process_deliveries
from tests.conftest import superuser_connect, wipe_archive
from tests.performance.bench_review import BIG_WA_ID, CHANNELS, Archive, percentile
from tests.performance.conftest import Figure, rate, record, say, seconds, store_deliveries, table

MESSAGES = int(os.environ.get("BENCH_API_MESSAGES", "120000"))
BIG = int(os.environ.get("BENCH_API_BIG", "100000"))
LIMIT = int(os.environ.get("BENCH_API_LIMIT", "1000"))
PAGE = int(os.environ.get("BENCH_API_PAGE", "100"))
CALLS = int(os.environ.get("BENCH_API_CALLS", "200"))
PROFILE = os.environ.get("BENCH_API_PROFILE", "") not in ("", "0")
PROFILE_SORT = os.environ.get("BENCH_PROFILE_SORT", "cumulative")
PER_DELIVERY = int(os.environ.get("BENCH_API_PER_DELIVERY", "100"))
SEAL_DELIVERIES = 100
CHECKPOINT_EVERY = 100_000
PAGED_TARGET = 5_000  # "Messages of a 100,000-message conversation paged through at >= 5,000/s"
PAGE_TARGET = 0.050  # "p95 of a one-page call <= 50 ms"
USERNAME = "bench-api-reviewer"

# The page's keyset query and its leaf hashes, as api/messages.py reads them.
BARE_PAGE = """
SELECT m.id, m.seq, m.wamid, m.direction, m.type, m.sent_at, m.text, m.payload, m.source,
       m.context_wamid, m.forwarded, m.sender_id
FROM messaging_message m
WHERE m.conversation_id = %s AND m.seq > %s AND m.type NOT IN ('reaction', 'edit', 'revoke')
ORDER BY m.seq LIMIT %s
"""
BARE_LEAVES = "SELECT seq, leaf_hash FROM archive_ledgerentry WHERE seq = ANY(%s)"


@dataclass
class World:
    big: Conversation
    visible: int
    client: APIClient
    archive: Archive


def long_archive(messages: int, big: int) -> Archive:
    """bench_review's Archive with a conversation of `big` messages (its own constructor keeps
    the big one to half the archive; here it may be most of it)."""
    archive = Archive(max(messages, big), big=big)
    archive.big = big
    archive.big_at = {k * archive.messages // big for k in range(big)}
    return archive


def build(archive: Archive) -> float:
    began = time.perf_counter()
    bodies = archive.deliveries(PER_DELIVERY)
    next_checkpoint = CHECKPOINT_EVERY
    while chunk := [b for _, b in zip(range(SEAL_DELIVERIES), bodies, strict=False)]:
        store_deliveries(chunk)
        assert process_deliveries() == len(chunk)
        if archive.stats.messages >= next_checkpoint:
            create_checkpoint()
            next_checkpoint += CHECKPOINT_EVERY
            say(f"   ... {archive.stats.messages:,} messages sealed")
    create_checkpoint()
    spent = time.perf_counter() - began
    with superuser_connect() as conn:
        conn.execute("VACUUM (ANALYZE)")
    return spent


@pytest.fixture(scope="module")
def api_world(
    django_db_setup: None, django_db_blocker: Any, server_settings: str
) -> Iterator[World]:
    with django_db_blocker.unblock():
        wipe_archive()
        try:
            for channel in CHANNELS:
                Channel.objects.create(**channel)
            archive = long_archive(MESSAGES, BIG)
            say()
            say(
                f"== API archive: {archive.messages:,} messages, one conversation of {BIG:,}"
                f" ({server_settings})"
            )
            spent = build(archive)
            say(
                f"   built in {seconds(spent)} ({rate(archive.stats.messages / spent)}),"
                f" {archive.stats.statuses:,} statuses, {archive.stats.reactions:,} reactions"
            )
            big = Conversation.objects.get(key=f"wa:{BIG_WA_ID}")
            visible = ConversationSummary.objects.get(conversation=big).message_count
            assert visible == BIG
            user = User.objects.create_user(USERNAME)
            user.groups.set(Group.objects.filter(name=roles.REVIEWER))
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {new_token(user, 'bench', 1)[1]}")
            yield World(big, visible, client, archive)
        finally:
            connections.close_all()
            wipe_archive()
            with superuser_connect() as conn:
                conn.execute("SET session_replication_role = replica")
                for statement in (
                    "DELETE FROM review_accessevent WHERE username = %s",
                    "DELETE FROM clientwindow_apitoken WHERE owner_id IN"
                    " (SELECT id FROM auth_user WHERE username = %s)",
                    "DELETE FROM auth_user_groups WHERE user_id IN"
                    " (SELECT id FROM auth_user WHERE username = %s)",
                    "DELETE FROM auth_user WHERE username = %s",
                ):
                    conn.execute(statement, [USERNAME])


def url(world: World) -> str:
    return f"/api/v1/conversations/{world.big.pk}/messages/"


def bare_page(conversation: int, after: int, limit: int) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(BARE_PAGE, [conversation, after, limit + 1])
        rows: list[tuple[Any, ...]] = cursor.fetchall()[:limit]
        cursor.execute(BARE_LEAVES, [[row[1] for row in rows]])
        cursor.fetchall()
        return rows


def reads(captured: CaptureQueriesContext) -> list[str]:
    """The page's statements as sent, less the access event and transaction control."""
    return [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].lstrip().upper().startswith("SELECT")
    ]


def test_paging_a_long_conversation(api_world: World) -> None:
    api_seqs: list[int] = []
    statements: list[list[str]] = []
    per_page: list[int] = []
    pages: list[str] = []
    began = time.perf_counter()
    address: str | None = url(api_world) + f"?limit={LIMIT}"
    while address is not None:
        pages.append(address)
        response = api_world.client.get(address)
        assert response.status_code == 200, response.content[:300]
        body = response.json()
        api_seqs += [m["seq"] for m in body["results"]]
        address = body["next"]
    through_api = time.perf_counter() - began
    for address in pages:  # again, untimed, to capture the statements (capturing costs)
        with CaptureQueriesContext(connection) as captured:
            api_world.client.get(address)
        statements.append(reads(captured))
        per_page.append(len(captured))

    began = time.perf_counter()
    bare_seqs: list[int] = []
    after = -1
    while rows := bare_page(api_world.big.pk, after, LIMIT):
        bare_seqs += [row[1] for row in rows]
        after = rows[-1][1]
    keyset = time.perf_counter() - began

    began = time.perf_counter()
    with connection.cursor() as cursor:
        for page in statements:
            for sql in page:
                cursor.execute(sql)
                cursor.fetchall()
    replayed = time.perf_counter() - began

    assert api_seqs == bare_seqs and len(api_seqs) == api_world.visible
    n = len(api_seqs)
    say(
        table(
            ["read", "time", "messages/s"],
            [
                ["through the API (test client)", seconds(through_api), rate(n / through_api)],
                [
                    "bare SQL: the keyset page and its leaf hashes",
                    seconds(keyset),
                    rate(n / keyset),
                ],
                ["bare SQL: every SELECT the API sent", seconds(replayed), rate(n / replayed)],
            ],
            title=f"== {n:,} messages of one conversation, {LIMIT} a page ({len(per_page)} pages)"
            f" (archive of {api_world.archive.messages:,}); statements per page:"
            f" {min(per_page)}-{max(per_page)}",
        )
    )
    record(
        Figure(
            f"API: a {n:,}-message conversation paged ({LIMIT}/call)",
            n / through_api,
            "messages/s",
            ceiling=n / replayed,
            ceiling_label="its SELECTs, bare",
            target=PAGED_TARGET,
        )
    )


def test_profile_of_a_page(api_world: World) -> None:
    """BENCH_API_PROFILE=1: where a call of LIMIT messages spends its time."""
    if not PROFILE:
        pytest.skip("BENCH_API_PROFILE is not set")
    api_world.client.get(url(api_world), {"limit": LIMIT})  # imports and caches: not the call
    profiler = cProfile.Profile()
    profiler.enable()
    for after in (-1, -1, -1):
        api_world.client.get(url(api_world), {"after": after, "limit": LIMIT})
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats(PROFILE_SORT)
    stats.print_stats(45)
    stats.print_callees("decorate|conversation_messages|_statuses|_fetch_all")
    say(out.getvalue())
    with CaptureQueriesContext(connection) as captured:
        api_world.client.get(url(api_world), {"after": -1, "limit": LIMIT})
    for query in captured.captured_queries:
        say(f"{query['time']:>8} s  {query['sql'][:150]}")
    slowest = max(captured.captured_queries, key=lambda q: float(q["time"]))
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest["sql"])
        say("\n".join(row[0] for row in cursor.fetchall()))
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + BARE_PAGE, [api_world.big.pk, -1, PAGE + 1])
        say("\n".join(row[0] for row in cursor.fetchall()))


def test_one_page(api_world: World) -> None:
    rng = random.Random(19)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq FROM messaging_message WHERE conversation_id = %s ORDER BY seq",
            [api_world.big.pk],
        )
        seqs = [row[0] for row in cursor.fetchall()]
    positions = [rng.choice(seqs) for _ in range(CALLS)]
    calls, bare = [], []
    for after in positions:  # alternating, so that both see the same cache and load
        t0 = time.perf_counter()
        response = api_world.client.get(url(api_world), {"after": after, "limit": PAGE})
        calls.append(time.perf_counter() - t0)
        assert response.status_code == 200
        t0 = time.perf_counter()
        rows = bare_page(api_world.big.pk, after, PAGE)
        bare.append(time.perf_counter() - t0)
        assert [m["seq"] for m in response.json()["results"]] == [r[1] for r in rows]
    p50, p95 = statistics.median(calls), percentile(calls, 95)
    say(
        table(
            ["one page", "p50", "p95", "max"],
            [
                ["through the API", seconds(p50), seconds(p95), seconds(max(calls))],
                [
                    "bare keyset query",
                    seconds(statistics.median(bare)),
                    seconds(percentile(bare, 95)),
                    seconds(max(bare)),
                ],
            ],
            title=f"== {CALLS} calls of {PAGE} messages at random positions in the"
            f" {api_world.visible:,}-message conversation (archive of"
            f" {api_world.archive.messages:,})",
        )
    )
    record(
        Figure(
            f"API: one page of {PAGE} messages, p95 ({api_world.archive.messages:,} archive)",
            p95,
            "s",
            ceiling=percentile(bare, 95),
            ceiling_label="bare keyset query",
            target=PAGE_TARGET,
        )
    )
