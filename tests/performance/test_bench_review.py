"""Reviewer-portal benchmarks: search and transcripts over a 1,000,000-message archive.

The archive is built through the real write path: Meta-shaped webhook bodies
(tests/performance/bench_review.py: ~2,000 clients on three channels, one conversation of exactly
5,000 messages, Zipf-distributed words, documents, replies, profile names), stored as Delivery
rows as the webhook stores them, and sealed by messaging.sequencer.process_deliveries() (which
appends every fact to the ledger and writes the records), with a signed checkpoint every
100,000 messages. Then VACUUM ANALYZE, as autovacuum would before anyone searches.

1. Search, p50/p95 over BENCH_REVIEW_QUERIES (50) different queries per shape, each measured
   three ways in the same run, in rotating order: the Django view (django.test.Client, a
   logged-in reviewer, GET review:search, timed in-process: middleware, session, form, search,
   access event, template), the domain call review.search.search() (ids page, participants,
   capped count, headlines), and the bare PostgreSQL query for the same search: one statement,
   `search @@ websearch_to_tsquery('simple', q)` with the same filters, newest first (or ranked
   by ts_rank), LIMIT 26, as in ../shared/PERFORMANCE-CEILINGS.md. The first page of ids must be
   the same in the domain call and in the bare query.
2. Transcripts: the 5,000-message conversation opened at its latest messages, at a message in
   the middle (?at=), its earlier-window htmx call, and the conversation list (page 1 and the
   last keyset page), each beside the bare keyset query in index order.
3. A summary, also written to var/bench/review.json. Any measurement over its target prints the
   EXPLAIN (ANALYZE, BUFFERS) of its slowest statement (BENCH_REVIEW_EXPLAIN=1: of every shape).

Environment: BENCH_REVIEW_MESSAGES (1,000,000), BENCH_REVIEW_PER_DELIVERY (100 messages per
webhook body), BENCH_REVIEW_QUERIES (50), BENCH_REVIEW_SHAPE_SECONDS (120: a shape stops there
once it has 10 queries), BENCH_REVIEW_TRANSCRIPTS (30), BENCH_REVIEW_EXPLAIN,
BENCH_REVIEW_PROFILE=1 to print a cProfile of process_deliveries() over the build and of a few
view requests, BENCH_REVIEW_KEEP=1 to keep a copy of the built archive in the cluster and reuse
it in the next run of the same size (a cluster that outlives the run: DATABASE_URL).
"""

import contextlib
import cProfile
import io
import json
import os
import pstats
import re
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection, connections
from django.template import Template
from django.test import Client
from django.test.utils import CaptureQueriesContext, _TestState
from django.urls import reverse
from django.utils import timezone
from psycopg import sql

from access import roles
from archive.checkpoints import create_checkpoint
from messaging.models import (
    Channel,
    Conversation,
    ConversationSummary,
    DeliverySeal,
    Message,
    StatusEvent,
)
from messaging.sequencer import process_deliveries
from messaging.summaries import ANNOTATION_TYPES
from review import search, transcript
from tests.conftest import TEST_DB, superuser_connect, wipe_archive
from tests.performance.bench_review import (
    BIG_WA_ID,
    CHANNELS,
    CLIENTS,
    NOW,
    START,
    Archive,
    client_number,
    percentile,
)
from tests.performance.conftest import Figure, rate, record, say, seconds, store_deliveries, table

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "var" / "bench" / "review.json"
MESSAGES = int(os.environ.get("BENCH_REVIEW_MESSAGES", "1000000"))
PER_DELIVERY = int(os.environ.get("BENCH_REVIEW_PER_DELIVERY", "100"))
QUERIES = int(os.environ.get("BENCH_REVIEW_QUERIES", "50"))
TRANSCRIPTS = int(os.environ.get("BENCH_REVIEW_TRANSCRIPTS", "30"))
# A shape stops after this many seconds (once it has 10 queries): a slow shape must not take
# the whole run; the table says how many queries each figure is over.
SHAPE_SECONDS = float(os.environ.get("BENCH_REVIEW_SHAPE_SECONDS", "120"))
EXPLAIN_ALL = os.environ.get("BENCH_REVIEW_EXPLAIN", "") not in ("", "0")
PROFILE = os.environ.get("BENCH_REVIEW_PROFILE", "") not in ("", "0")
KEEP = os.environ.get("BENCH_REVIEW_KEEP", "") not in ("", "0")
SEAL_DELIVERIES = 100  # Delivery rows stored between two process_deliveries() calls
CHECKPOINT_EVERY = 100_000
BIG = 5_000
SEARCH_TARGET = 0.100  # "Search over 1,000,000 messages with a filter: p95 <= 100 ms server time"
REVIEWER = "bench-reviewer"
MODES = ("view", "view_sql", "domain", "bare")
REPORTED: dict[str, Any] = {"settings": {}, "build": {}, "search": [], "transcript": []}


# --------------------------------------------------------------------------- the archive


@dataclass
class World:
    archive: Archive
    channels: list[Channel]
    big: Conversation
    user: User
    build: dict[str, Any] = field(default_factory=dict)


def normalized(sql: str) -> str:
    """A statement with its IN lists and VALUES rows collapsed (as bench_sequencer does)."""
    key = re.sub(r"%s(, %s)+", "%s, ...", " ".join(sql.split()))
    key = re.sub(r"\(%s, \.\.\.\)(, \(%s, \.\.\.\))+", "(%s, ...), ...", key)
    return key


def build(archive: Archive) -> dict[str, Any]:
    """Store the deliveries and seal them, SEAL_DELIVERIES at a time; return the timings.

    Every statement process_deliveries() sends through the ORM is timed (the ledger's COPY goes
    through the raw cursor and is not), to show which of them grows with the archive."""
    generating = storing = sealing = checkpointing = 0.0
    sealed_deliveries = 0
    next_checkpoint = CHECKPOINT_EVERY
    began = time.perf_counter()
    bodies = archive.deliveries(PER_DELIVERY)
    progress: list[list[str]] = []
    by_statement: dict[str, list[float]] = {}  # normalized SQL -> [calls, seconds]
    segment = {"messages": 0, "seal": 0.0, "store": 0.0, "select": 0.0, "slowest": 0.0}
    last: list[Statement] = []
    profiler = cProfile.Profile() if PROFILE else None
    while True:
        t0 = time.perf_counter()
        chunk = [b for _, b in zip(range(SEAL_DELIVERIES), bodies, strict=False)]
        t1 = time.perf_counter()
        generating += t1 - t0
        if not chunk:
            break
        store_deliveries(chunk)
        t2 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        with statements() as captured:
            count = process_deliveries()
        last = captured
        if profiler is not None:
            profiler.disable()
        t3 = time.perf_counter()
        storing, sealing = storing + t2 - t1, sealing + t3 - t2
        assert count == len(chunk)
        sealed_deliveries += count
        segment["store"] += t2 - t1
        segment["seal"] += t3 - t2
        segment["slowest"] = max(segment["slowest"], t3 - t2)
        for statement in last:
            tally = by_statement.setdefault(normalized(statement.sql)[:150], [0, 0.0])
            tally[0] += 1
            tally[1] += statement.seconds
            if statement.sql.lstrip().upper().startswith("SELECT"):
                segment["select"] += statement.seconds
        if archive.stats.messages >= next_checkpoint or len(chunk) < SEAL_DELIVERIES:
            t4 = time.perf_counter()
            create_checkpoint()
            checkpointing += time.perf_counter() - t4
            spent = segment["store"] + segment["seal"]
            progress.append(
                [
                    f"{archive.stats.messages:,}",
                    rate((archive.stats.messages - segment["messages"]) / spent),
                    seconds(segment["seal"]),
                    seconds(segment["select"]),
                    seconds(segment["slowest"]),
                    seconds(time.perf_counter() - began),
                ]
            )
            say(
                f"   ... {archive.stats.messages:,} messages sealed: this segment"
                f" {progress[-1][1]} (store + seal), SELECTs {progress[-1][3]}"
                f" of {progress[-1][2]} sealing; {progress[-1][5]} wall"
            )
            segment = {
                "messages": archive.stats.messages,
                "seal": 0.0,
                "store": 0.0,
                "select": 0.0,
                "slowest": 0.0,
            }
            next_checkpoint += CHECKPOINT_EVERY
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        say("== cProfile of process_deliveries() during the build (BENCH_REVIEW_PROFILE)")
        say(out.getvalue())
    return {
        "wall": time.perf_counter() - began,
        "generating": generating,
        "storing": storing,
        "sealing": sealing,
        "checkpointing": checkpointing,
        "deliveries": sealed_deliveries,
        "progress": progress,
        "statements": sorted(by_statement.items(), key=lambda kv: -kv[1][1])[:10],
        "last_batch": last,
    }


def vacuum_and_sizes() -> tuple[float, dict[str, str]]:
    t0 = time.perf_counter()
    with superuser_connect() as conn:
        conn.execute("VACUUM (ANALYZE)")
        vacuumed = time.perf_counter() - t0
        sizes = {
            name: conn.execute(
                "SELECT pg_size_pretty(pg_total_relation_size(%s))", [name]
            ).fetchone()[0]
            for name in (
                "messaging_message",
                "message_search",
                "message_sent",
                "message_transcript",
                "messaging_delivery",
                "archive_ledgerentry",
                "archive_content",
            )
        }
        sizes["database"] = conn.execute(
            "SELECT pg_size_pretty(pg_database_size(current_database()))"
        ).fetchone()[0]
    return vacuumed, sizes


@pytest.fixture(scope="module")
def archive_world(
    django_db_setup: None, django_db_blocker: Any, server_settings: str
) -> Iterator[World]:
    with django_db_blocker.unblock():
        wipe_archive()
        try:
            yield restored_world() or make_world(server_settings)
        finally:
            write_report()
            connections.close_all()
            wipe_archive()
            with superuser_connect() as conn:
                conn.execute("SET session_replication_role = replica")
                conn.execute(
                    "DELETE FROM review_accessevent WHERE user_id IN"
                    " (SELECT id FROM auth_user WHERE username = %s)",
                    [REVIEWER],
                )
                conn.execute(
                    "DELETE FROM auth_user_groups WHERE user_id IN"
                    " (SELECT id FROM auth_user WHERE username = %s)",
                    [REVIEWER],
                )
                conn.execute("DELETE FROM auth_user WHERE username = %s", [REVIEWER])
                conn.execute("TRUNCATE django_q_ormq, django_q_task")


def make_world(server_settings: str) -> World:
    channels = [Channel.objects.create(**c) for c in CHANNELS]
    archive = Archive(MESSAGES, big=BIG)
    say()
    say(
        f"== review archive: {MESSAGES:,} messages, {PER_DELIVERY} per webhook body,"
        f" {SEAL_DELIVERIES} bodies stored per process_deliveries() call ({server_settings})"
    )
    timings = build(archive)
    stats = archive.stats
    vacuumed, sizes = vacuum_and_sizes()

    # Correctness: everything sealed once, every message stored, the big conversation exact.
    visible = Message.objects.exclude(type__in=ANNOTATION_TYPES).count()
    assert DeliverySeal.objects.count() == stats.deliveries == timings["deliveries"]
    assert visible == stats.messages == MESSAGES
    assert Message.objects.count() == stats.messages + stats.reactions
    assert StatusEvent.objects.count() == stats.statuses
    big = Conversation.objects.get(channel=channels[0], key=f"wa:{BIG_WA_ID}")
    summary = ConversationSummary.objects.get(conversation=big)
    assert summary.message_count == archive.big == min(BIG, MESSAGES // 2)
    conversations = Conversation.objects.count()
    ledger_entries = _scalar("SELECT size FROM archive_chainhead WHERE id = 1")

    spent = timings["storing"] + timings["sealing"]
    build_rate = stats.messages / spent
    say(
        table(
            [
                "messages sealed",
                "segment msgs/s (store + seal)",
                "sealing",
                "of which ORM SELECTs",
                "slowest call",
                "wall",
            ],
            timings["progress"],
            title="== build progress, per segment of the archive (one process_deliveries() call"
            f" per {SEAL_DELIVERIES} deliveries)",
        )
    )
    say(
        table(
            ["statement (ORM, IN lists collapsed)", "calls", "time", "of sealing"],
            [
                [sql[:120], f"{n:,}", seconds(t), f"{100 * t / timings['sealing']:.1f}%"]
                for sql, (n, t) in timings["statements"]
            ],
            title="== process_deliveries() statements over the build (the ledger's COPY is not"
            " included)",
        )
    )
    selects = [st for st in timings["last_batch"] if st.sql.lstrip().upper().startswith("SELECT")]
    if selects:
        explain_slowest("the last build batch's slowest SELECT (sequencer)", selects)
    say(
        f"   built {stats.messages:,} messages ({stats.inbound / stats.messages:.0%} inbound,"
        f" {stats.documents:,} documents, {stats.replies:,} replies, {stats.reactions:,}"
        f" reactions, {stats.statuses:,} statuses) in {stats.deliveries:,} deliveries of"
        f" {stats.body_bytes / stats.deliveries / 1024:,.0f} KiB, {conversations:,}"
        f" conversations, {stats.words / stats.messages:.1f} words/message;"
        f" {ledger_entries:,} ledger entries"
    )
    say(
        f"   store + seal {rate(build_rate)} ({seconds(timings['storing'])} storing deliveries,"
        f" {seconds(timings['sealing'])} in process_deliveries);"
        f" generating bodies {seconds(timings['generating'])},"
        f" checkpoints {seconds(timings['checkpointing'])};"
        f" wall {seconds(timings['wall'])} = {rate(stats.messages / timings['wall'])} overall;"
        f" VACUUM ANALYZE {seconds(vacuumed)}"
    )
    say("   sizes: " + ", ".join(f"{name} {size}" for name, size in sizes.items()))
    record(
        Figure(
            f"review build {stats.messages:,} msgs via sequencer",
            build_rate,
            "messages/s",
            reference="tsvector table load: 22,000 rows/s",
        )
    )
    REPORTED["settings"] = {
        "server": server_settings,
        "messages": MESSAGES,
        "per_delivery": PER_DELIVERY,
        "queries_per_shape": QUERIES,
        "transcript_requests": TRANSCRIPTS,
    }
    REPORTED["build"] = {
        "messages": stats.messages,
        "deliveries": stats.deliveries,
        "documents": stats.documents,
        "reactions": stats.reactions,
        "statuses": stats.statuses,
        "conversations": conversations,
        "ledger_entries": ledger_entries,
        "words_per_message": stats.words / stats.messages,
        "store_seal_messages_per_s": build_rate,
        "overall_messages_per_s": stats.messages / timings["wall"],
        "storing_s": timings["storing"],
        "sealing_s": timings["sealing"],
        "generating_s": timings["generating"],
        "checkpointing_s": timings["checkpointing"],
        "wall_s": timings["wall"],
        "vacuum_analyze_s": vacuumed,
        "sizes": sizes,
    }

    if KEEP:
        keep_copy()
    user = User.objects.create_user(REVIEWER)
    user.groups.set(Group.objects.filter(name=roles.REVIEWER))
    return World(archive, channels, big, user, timings)


def kept_name() -> str:
    return f"{TEST_DB}_review_{MESSAGES}"


def keep_copy() -> None:
    """BENCH_REVIEW_KEEP: a copy of the built archive as a database of its own in the same
    cluster, which the next run with the same size restores instead of building (a long-lived
    cluster only: a throwaway one goes with its copy)."""
    connections.close_all()
    t0 = time.perf_counter()
    with superuser_connect("postgres") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(kept_name())))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(kept_name()), sql.Identifier(TEST_DB)
            )
        )
    say(f"   kept a copy as database {kept_name()} ({seconds(time.perf_counter() - t0)})")


def restored_world() -> World | None:
    """The archive of an earlier run with BENCH_REVIEW_KEEP, copied back into the test
    database and migrated to the current code; None if there is none. The generator runs again
    (without storing) for its statistics and query material, which are deterministic."""
    if not KEEP:
        return None
    with superuser_connect("postgres") as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [kept_name()])
        if found.fetchone() is None:
            return None
    t0 = time.perf_counter()
    connections.close_all()
    owner = settings.DATABASES["owner"]["USER"]
    test_db = sql.Identifier(TEST_DB)
    with superuser_connect("postgres") as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(test_db))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                test_db, sql.Identifier(kept_name()), sql.Identifier(owner)
            )
        )
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(test_db))
        runtime = sql.Identifier(settings.DATABASES["default"]["USER"])
        conn.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(test_db, runtime)
        )
        if settings.DATABASE_AUDITOR_ROLE:
            auditor = sql.Identifier(settings.DATABASE_AUDITOR_ROLE)
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(test_db, auditor))
    call_command("migrate", database="owner", verbosity=0)
    connections["owner"].close()
    archive = Archive(MESSAGES, big=BIG)
    for _ in archive.deliveries(PER_DELIVERY):
        pass
    channels = [Channel.objects.get(phone_number_id=c["phone_number_id"]) for c in CHANNELS]
    big = Conversation.objects.get(channel=channels[0], key=f"wa:{BIG_WA_ID}")
    assert Message.objects.exclude(type__in=ANNOTATION_TYPES).count() == MESSAGES
    say()
    say(
        f"== review archive: {MESSAGES:,} messages restored from database {kept_name()}"
        f" (BENCH_REVIEW_KEEP) in {seconds(time.perf_counter() - t0)}"
    )
    user = User.objects.create_user(REVIEWER)
    user.groups.set(Group.objects.filter(name=roles.REVIEWER))
    return World(archive, channels, big, user)


def _scalar(query: str, params: list[Any] | None = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return cursor.fetchone()[0]


def write_report() -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORTED["written_at"] = timezone.now().isoformat()
    REPORT.write_text(json.dumps(REPORTED, indent=2, default=str) + "\n")
    say(f"   figures written to {REPORT.relative_to(ROOT)}")


# --------------------------------------------------------------------------- measuring


@dataclass
class Statement:
    sql: str
    params: Any
    seconds: float


@contextlib.contextmanager
def statements() -> Iterator[list[Statement]]:
    """Every statement the ORM sends inside the block, with its time and parameters."""
    seen: list[Statement] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            seen.append(Statement(sql, params, time.perf_counter() - t0))

    with connection.execute_wrapper(wrapper):
        yield seen


@contextlib.contextmanager
def production_rendering() -> Iterator[None]:
    """Templates rendered as in production: without the test environment's instrumented
    Template._render (which sends a signal with a copy of every context, for the test client's
    response.context), so that the view's time is the server's."""
    saved = getattr(_TestState, "saved_data", None)
    instrumented = Template._render
    if saved is not None:
        Template._render = saved.template_render
    try:
        yield
    finally:
        Template._render = instrumented


def run_bare(bare: list[tuple[str, list[Any]]]) -> tuple[float, list[list[Any]]]:
    rows = []
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        for sql, params in bare:
            cursor.execute(sql, params)
            rows.append(cursor.fetchall())
    return time.perf_counter() - t0, rows


def explain(sql: str, params: Any) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def p(values: list[float], pct: float) -> float:
    return statistics.median(values) if pct == 50 else percentile(values, pct)


def ms_pair(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{p(values, 50) * 1000:,.1f} / {p(values, 95) * 1000:,.1f}"


def explain_slowest(title: str, captured: list[Statement]) -> str:
    """The EXPLAIN (ANALYZE, BUFFERS) of the slowest statement of one measured call."""
    slowest = max(captured, key=lambda s: s.seconds)
    plan = "\n".join(clip(line, 300) for line in explain(slowest.sql, slowest.params).splitlines())
    say()
    say(f"== EXPLAIN (ANALYZE, BUFFERS), {title}: slowest statement ({seconds(slowest.seconds)})")
    with connection.cursor() as cursor:
        say("   " + clip(cursor.mogrify(slowest.sql, slowest.params), 2500))
    say(plan)
    return plan


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]} … ({len(text):,} characters)"


# --------------------------------------------------------------------------- 1. search


@dataclass
class Shape:
    name: str
    params: list[dict[str, str]]
    filtered: bool = True
    reference: str = ""  # the PERFORMANCE-CEILINGS.md figure, when there is one


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, clock.min))


def bare_search(params: dict[str, str]) -> list[tuple[str, list[Any]]]:
    """The same search as one plain statement (two for a number: the participants too)."""
    where = ["type NOT IN ('reaction', 'revoke')"]
    args: list[Any] = []
    q = params.get("q", "")
    if q:
        where.append("search @@ websearch_to_tsquery('simple', %s)")
        args.append(q)
    if params.get("channel"):
        where.append("channel_id = %s")
        args.append(int(params["channel"]))
    if params.get("direction"):
        where.append("direction = %s")
        args.append(params["direction"])
    if params.get("date_from"):
        where.append("sent_at >= %s")
        args.append(day_start(date.fromisoformat(params["date_from"])))
    if params.get("date_to"):
        where.append("sent_at < %s")
        args.append(day_start(date.fromisoformat(params["date_to"]) + timedelta(days=1)))
    order = "sent_at DESC NULLS LAST, id DESC"  # as search() orders, on message_sent
    matching = f"SELECT id FROM messaging_message WHERE {' AND '.join(where)} ORDER BY {order}"
    page = f"{matching} LIMIT {search.PAGE_SIZE + 1}"
    if params.get("sort") == "relevance":  # ranked within the newest matches, as search()
        ranked = (
            "SELECT id, sent_at, ts_rank(search, websearch_to_tsquery('simple', %s)) AS rank"
            f" FROM messaging_message WHERE {' AND '.join(where)} ORDER BY {order}"
        )
        page = (
            f"SELECT id FROM ({ranked} LIMIT {search.RELEVANCE_WITHIN}) recent"
            f" ORDER BY rank DESC, {order} LIMIT {search.PAGE_SIZE + 1}"
        )
        args.insert(0, q)
    statements_ = [(page, args)]
    if q and search._NUMBER.match(q):
        digits = "".join(ch for ch in q if ch.isdigit())
        statements_.append(
            ("SELECT id FROM messaging_participant WHERE wa_id LIKE %s", [f"%{digits}%"])
        )
    return statements_


def search_shapes(world: World) -> list[Shape]:
    material = world.archive.material
    n = QUERIES
    channels = [str(c.pk) for c in world.channels]

    def ch(i: int) -> str:
        return channels[i % len(channels)]

    rare = material.rank(30_000, 40_000, n, 1)
    common = material.rank(0, 60, n, 2)
    pair_a, pair_b = material.rank(20, 200, n, 3), material.rank(100, 1_000, n, 4)
    or_a, or_b = material.rank(200, 2_000, n, 5), material.rank(200, 2_000, n, 6)
    keep, drop = material.rank(10, 100, n, 7), material.rank(0, 10, n, 8)
    phrases = [material.phrases[i % len(material.phrases)] for i in range(n)]
    numbers = [client_number((i * 97 + 13) % CLIENTS) for i in range(n)]
    partial = [f"{d[2:6]} {d[6:9]}" for d in numbers]
    recent = (datetime.fromtimestamp(NOW, tz=UTC).date() - timedelta(days=30)).isoformat()
    old_from = datetime.fromtimestamp(START, tz=UTC).date() + timedelta(days=15)
    old = {"date_from": old_from.isoformat(), "date_to": (old_from + timedelta(30)).isoformat()}
    return [
        Shape(
            "rare word + channel",
            [{"q": w, "channel": ch(i)} for i, w in enumerate(rare)],
            reference="rare word 0.7 ms",
        ),
        Shape(
            "common word + channel",
            [{"q": w, "channel": ch(i)} for i, w in enumerate(common)],
            reference="common word 2.9 ms",
        ),
        Shape(
            "two words + channel",
            [
                {"q": f"{a} {b}", "channel": ch(i)}
                for i, (a, b) in enumerate(zip(pair_a, pair_b, strict=True))
            ],
            reference="two words AND 3.3 ms",
        ),
        Shape(
            "phrase + channel",
            [{"q": f'"{a} {b}"', "channel": ch(i)} for i, (a, b) in enumerate(phrases)],
            reference="phrase 12 ms",
        ),
        Shape(
            "word OR word + channel",
            [
                {"q": f"{a} OR {b}", "channel": ch(i)}
                for i, (a, b) in enumerate(zip(or_a, or_b, strict=True))
            ],
        ),
        Shape(
            "word -exclude + channel",
            [
                {"q": f"{a} -{b}", "channel": ch(i)}
                for i, (a, b) in enumerate(zip(keep, drop, strict=True))
            ],
        ),
        Shape(
            "partial number + channel", [{"q": q, "channel": ch(i)} for i, q in enumerate(partial)]
        ),
        Shape(
            "relevance, common word + channel",
            [{"q": w, "channel": ch(i), "sort": "relevance"} for i, w in enumerate(common)],
            reference="ranked common word 157 ms",
        ),
        Shape("common word, last 30 days", [{"q": w, "date_from": recent} for w in common]),
        Shape("common word, a month a year ago", [{"q": w, **old} for w in common]),
        Shape(
            "two words, inbound only",
            [{"q": f"{a} {b}", "direction": "in"} for a, b in zip(pair_a, pair_b, strict=True)],
        ),
        Shape("no text, channel only", [{"channel": ch(i)} for i in range(n)]),
        Shape("common word, no filter", [{"q": w} for w in common], False, "common word 2.9 ms"),
        Shape("rare word, no filter", [{"q": w} for w in rare], False, "rare word 0.7 ms"),
    ]


def classify(sql: str) -> str:
    if "COUNT(" in sql or "statement_timeout" in sql:  # the capped count and its time budget
        return "count"
    if sql.lstrip().startswith('SELECT DISTINCT "messaging_conversation"') or (
        'FROM "messaging_conversation"' in sql
    ):
        return "people"
    if ('FROM "messaging_message"' in sql and "INNER JOIN" in sql) or "ts_headline" in sql:
        return "hits"
    return "ids"


def measure_shape(client: Client, shape: Shape) -> dict[str, Any]:
    url = reverse("review:search")
    view, view_sql, domain, bare = [], [], [], []
    parts: dict[str, list[float]] = {}
    totals, mismatched = [], 0
    slowest: tuple[float, list[Statement], dict[str, str]] = (0.0, [], {})
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, shape.params[0])
    assert response.status_code == 200, response.status_code
    per_request = len(queries.captured_queries)
    started = time.perf_counter()
    for i, params in enumerate(shape.params):
        if i >= 10 and time.perf_counter() - started > SHAPE_SECONDS:
            break
        form = search.SearchForm(params)
        assert form.is_valid(), form.errors
        data = form.cleaned_data
        results: search.Results | None = None
        bare_rows: list[list[Any]] = []
        for step in range(3):
            mode = (i + step) % 3
            if mode == 0:
                with statements() as captured:
                    t0 = time.perf_counter()
                    response = client.get(url, params)
                    view.append(time.perf_counter() - t0)
                view_sql.append(sum(st.seconds for st in captured))
                assert response.status_code == 200, response.status_code
            elif mode == 1:
                with statements() as captured:
                    t0 = time.perf_counter()
                    results = search.search(Message.objects.all(), data)
                    spent = time.perf_counter() - t0
                domain.append(spent)
                for statement in captured:
                    parts.setdefault(classify(statement.sql), []).append(statement.seconds)
                if spent > slowest[0]:
                    slowest = (spent, captured, params)
            else:
                spent, bare_rows = run_bare(bare_search(params))
                bare.append(spent)
        assert results is not None
        totals.append(results.total)
        ours = [hit.message.pk for hit in results.hits]
        mismatched += ours != [row[0] for row in bare_rows[0]][: search.PAGE_SIZE]
    assert mismatched == 0, f"{shape.name}: {mismatched} queries with a different first page"
    plan = ""
    if EXPLAIN_ALL or p(view, 95) > SEARCH_TARGET or p(domain, 95) > SEARCH_TARGET:
        plan = explain_slowest(f"search '{shape.name}' {slowest[2]}", slowest[1])
    return {
        "shape": shape.name,
        "filtered": shape.filtered,
        "queries": len(view),
        "example": shape.params[0],
        "hits_median": statistics.median(totals),
        "capped_share": sum(t >= search.COUNT_CAP for t in totals) / len(totals),
        "sql_per_request": per_request,
        "view": view,
        "view_sql": view_sql,
        "domain": domain,
        "bare": bare,
        "parts": parts,
        "reference": shape.reference,
        "plan": plan,
    }


def outside_sql(result: dict[str, Any]) -> float:
    return statistics.median(
        [v - q for v, q in zip(result["view"], result["view_sql"], strict=True)]
    )


def profile_view(client: Client, url: str, params: list[dict[str, str]], title: str) -> None:
    """cProfile of a few view requests (BENCH_REVIEW_PROFILE): where the time outside SQL goes."""
    profiler = cProfile.Profile()
    for one in params:
        profiler.enable()
        client.get(url, one)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(15)
    say()
    say(f"== cProfile of {len(params)} view requests, {title} (BENCH_REVIEW_PROFILE)")
    say(out.getvalue())


def summary_row(result: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in result.items() if k not in (*MODES, "parts")}
    for mode in MODES:
        out[mode] = {"p50": p(result[mode], 50), "p95": p(result[mode], 95)}
    out["parts_p50"] = {k: statistics.median(v) for k, v in result["parts"].items()}
    return out


@pytest.fixture
def reviewer_client(archive_world: World) -> Iterator[Client]:
    client = Client()
    client.force_login(archive_world.user)
    with production_rendering():
        yield client


def test_search(archive_world: World, reviewer_client: Client) -> None:
    client = reviewer_client
    for _ in range(3):  # import the views, templates and forms
        client.get(reverse("review:search"), {"q": "portfolio"})
    results = []
    for shape in search_shapes(archive_world):
        t0 = time.perf_counter()
        result = measure_shape(client, shape)
        results.append(result)
        say(
            f"   {shape.name}: view {ms_pair(result['view'])} ms, domain"
            f" {ms_pair(result['domain'])} ms, bare {ms_pair(result['bare'])} ms"
            f" ({seconds(time.perf_counter() - t0)})"
        )
    rows = []
    for r in results:
        view95, bare95 = p(r["view"], 95), p(r["bare"], 95)
        rows.append(
            [
                r["shape"],
                str(r["queries"]),
                f"{r['hits_median']:,.0f}" + (" (capped)" if r["capped_share"] >= 0.5 else ""),
                ms_pair(r["view"]),
                ms_pair(r["domain"]),
                ms_pair(r["bare"]),
                f"{view95 / bare95:,.1f}x",
                f"{p(r['domain'], 95) / bare95:,.1f}x",
                ("yes" if view95 <= SEARCH_TARGET else "NO") if r["filtered"] else "-",
                r["reference"] or "-",
            ]
        )
    say()
    say(
        table(
            [
                "shape",
                "n",
                "hits (median)",
                "view p50/p95 ms",
                "search() p50/p95 ms",
                "bare SQL p50/p95 ms",
                "view/bare p95",
                "search()/bare p95",
                "<= 100 ms",
                "doc ceiling p95 (no filter)",
            ],
            rows,
            title=f"== search over {MESSAGES:,} messages: {QUERIES} different queries per shape,"
            " view = GET review:search in-process (logged-in reviewer), search() = review.search."
            "search(), bare = one SQL statement, newest first (or ts_rank), LIMIT 26",
        )
    )
    say(
        "   hits = the page's total as the view shows it (capped at 1,000: 'capped' when most"
        " queries reach the cap). Channel filters rotate over the three channels (50/30/20 %)."
        " Bare for a partial number = the full-text statement + the participant LIKE."
    )
    part_rows = []
    for r in results:
        part_rows.append(
            [
                r["shape"],
                *(
                    f"{statistics.median(r['parts'][k]) * 1000:,.1f}" if k in r["parts"] else "-"
                    for k in ("ids", "people", "count", "hits")
                ),
                str(r["sql_per_request"]),
                f"{statistics.median(r['view_sql']) * 1000:,.1f}",
                f"{outside_sql(r) * 1000:,.1f}",
            ]
        )
    say()
    say(
        table(
            [
                "shape",
                "ids page",
                "people",
                "count (cap 1,001)",
                "hits + headline",
                "SQL/request",
                "view: in SQL",
                "view: outside SQL",
            ],
            part_rows,
            title="== where the time goes: search()'s statements by kind, p50 ms; per view request:"
            " statements, and p50 ms spent in SQL and outside it (middleware, form, template)",
        )
    )
    if PROFILE:
        shape = search_shapes(archive_world)[1]
        profile_view(client, reverse("review:search"), shape.params[:5], f"search, {shape.name}")
    for r in results:
        reported = summary_row(r)
        REPORTED["search"].append(reported)
        record(
            Figure(
                f"search p95 {r['shape']} (view)",
                p(r["view"], 95),
                "s",
                p(r["bare"], 95),
                "bare SQL",
                r["reference"] or "-",
                SEARCH_TARGET if r["filtered"] else None,
            )
        )


# --------------------------------------------------------------------------- 2. transcripts


@dataclass
class Page:
    name: str
    urls: list[tuple[str, dict[str, str]]]
    domain: list[Callable[[], Any]] | None
    bare: list[list[tuple[str, list[Any]]]]


VISIBLE = "type NOT IN ('reaction', 'edit', 'revoke')"


def middle_picks(world: World) -> list[tuple[int, datetime]]:
    """TRANSCRIPTS messages from the middle tenth of the big conversation: (id, sent_at)."""
    ordered = list(
        Message.objects.filter(conversation=world.big)
        .exclude(type__in=ANNOTATION_TYPES)
        .order_by("sent_at", "id")
        .values_list("id", "sent_at")
    )
    assert len(ordered) == world.archive.big
    middle = len(ordered) // 2
    step = max(1, len(ordered) // 10 // TRANSCRIPTS)
    return [ordered[middle - TRANSCRIPTS // 2 * step + k * step] for k in range(TRANSCRIPTS)]


def transcript_pages(world: World) -> list[Page]:
    big = world.big
    picks = middle_picks(world)
    at_messages = {
        pk: Message.objects.select_related("entry", "sender").get(pk=pk) for pk, _ in picks
    }
    half = transcript.WINDOW // 2
    where = f"conversation_id = %s AND {VISIBLE}"
    latest_bare = [
        (
            f"SELECT id FROM messaging_message WHERE {where}"
            f" ORDER BY sent_at DESC NULLS LAST, id DESC LIMIT {transcript.WINDOW + 1}",
            [big.pk],
        )
    ]

    def around(pk: int, sent: datetime, size: int, both: bool) -> list[tuple[str, list[Any]]]:
        out = [
            (
                f"SELECT id FROM messaging_message WHERE {where} AND (sent_at, id) < (%s, %s)"
                f" ORDER BY sent_at DESC NULLS LAST, id DESC LIMIT {size + 1}",
                [big.pk, sent, pk],
            )
        ]
        if both:
            out.append(
                (
                    f"SELECT id FROM messaging_message WHERE {where} AND (sent_at, id) > (%s, %s)"
                    f" ORDER BY sent_at ASC NULLS FIRST, id LIMIT {size + 1}",
                    [big.pk, sent, pk],
                )
            )
        return out

    summaries = list(
        ConversationSummary.objects.order_by("-last_message_at", "-conversation_id").values_list(
            "last_message_at", "conversation_id"
        )
    )
    # The cursor that opens the last page (the list shows 50 a page).
    deep = summaries[max(0, len(summaries) - 51)]
    cursor = f"{deep[0].isoformat()}|{deep[1]}"
    list_sql = (
        "SELECT conversation_id FROM messaging_conversationsummary {where}"
        " ORDER BY last_message_at DESC NULLS LAST, conversation_id DESC LIMIT 51"
    )
    conversation_url = reverse("review:conversation", args=[big.pk])
    messages_url = reverse("review:conversation_messages", args=[big.pk])
    list_url = reverse("review:conversations")
    return [
        Page(
            "transcript, latest window",
            [(conversation_url, {})] * TRANSCRIPTS,
            [lambda: transcript.window(big)] * TRANSCRIPTS,
            [latest_bare] * TRANSCRIPTS,
        ),
        Page(
            "transcript, at a middle message (?at=)",
            [(conversation_url, {"at": str(pk)}) for pk, _ in picks],
            [
                (lambda m=at_messages[pk]: transcript.window(big, at=m))  # type: ignore[misc]
                for pk, _ in picks
            ],
            [around(pk, sent, half, True) for pk, sent in picks],
        ),
        Page(
            "transcript, earlier window (htmx ?before=)",
            [(messages_url, {"before": str(pk)}) for pk, _ in picks],
            [
                (lambda m=at_messages[pk]: transcript.window(big, before=m))  # type: ignore[misc]
                for pk, _ in picks
            ],
            [around(pk, sent, transcript.WINDOW, False) for pk, sent in picks],
        ),
        Page(
            "conversation list, page 1",
            [(list_url, {})] * TRANSCRIPTS,
            None,
            [[(list_sql.format(where=""), [])]] * TRANSCRIPTS,
        ),
        Page(
            f"conversation list, last page ({len(summaries):,} conversations)",
            [(list_url, {"after": cursor})] * TRANSCRIPTS,
            None,
            [
                [
                    (
                        list_sql.format(
                            where="WHERE (last_message_at, conversation_id) < (%s, %s)"
                        ),
                        [deep[0], deep[1]],
                    )
                ]
            ]
            * TRANSCRIPTS,
        ),
    ]


def test_transcripts(archive_world: World, reviewer_client: Client) -> None:
    client = reviewer_client
    results = []
    for page in transcript_pages(archive_world):
        url, params = page.urls[0]
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, params)
        assert response.status_code == 200, response.status_code
        per_request = len(queries.captured_queries)
        view, view_sql, domain, bare = [], [], [], []
        slowest: tuple[float, list[Statement]] = (0.0, [])
        for i in range(len(page.urls)):
            for step in range(3):
                mode = (i + step) % 3
                if mode == 0:
                    url, params = page.urls[i]
                    with statements() as captured:
                        t0 = time.perf_counter()
                        response = client.get(url, params)
                        spent = time.perf_counter() - t0
                    view.append(spent)
                    view_sql.append(sum(st.seconds for st in captured))
                    assert response.status_code == 200, response.status_code
                    if spent > slowest[0]:
                        slowest = (spent, captured)
                elif mode == 1 and page.domain is not None:
                    t0 = time.perf_counter()
                    window = page.domain[i]()
                    domain.append(time.perf_counter() - t0)
                    assert window.rows
                elif mode == 2:
                    spent, _ = run_bare(page.bare[i])
                    bare.append(spent)
        plan = ""
        if EXPLAIN_ALL or p(view, 95) > SEARCH_TARGET:
            plan = explain_slowest(page.name, slowest[1])
        results.append(
            {
                "page": page.name,
                "requests": len(page.urls),
                "sql_per_request": per_request,
                "view": view,
                "view_sql": view_sql,
                "domain": domain,
                "bare": bare,
                "plan": plan,
            }
        )
        say(f"   {page.name}: view {ms_pair(view)} ms, bare {ms_pair(bare)} ms")
        if PROFILE and page.domain is not None:
            profile_view(client, page.urls[0][0], [q for _, q in page.urls[:5]], page.name)
    rows = [
        [
            r["page"],
            ms_pair(r["view"]),
            ms_pair(r["domain"]),
            ms_pair(r["bare"]),
            f"{p(r['view'], 95) / p(r['bare'], 95):,.1f}x",
            str(r["sql_per_request"]),
            f"{statistics.median(r['view_sql']) * 1000:,.1f}",
            f"{outside_sql(r) * 1000:,.1f}",
        ]
        for r in results
    ]
    say()
    say(
        table(
            [
                "page",
                "view p50/p95 ms",
                "window() p50/p95 ms",
                "bare SQL p50/p95 ms",
                "view/bare p95",
                "SQL/request",
                "view: in SQL p50",
                "outside SQL p50",
            ],
            rows,
            title=f"== transcripts: the {archive_world.archive.big:,}-message conversation and"
            f" the conversation list, {TRANSCRIPTS} requests each (view in-process, logged-in"
            " reviewer); bare = the keyset query in index order (sent_at, id), LIMIT window + 1",
        )
    )
    for r in results:
        REPORTED["transcript"].append(
            {
                **{k: v for k, v in r.items() if k not in MODES},
                **{
                    mode: {"p50": p(r[mode], 50), "p95": p(r[mode], 95)} if r[mode] else None
                    for mode in MODES
                },
            }
        )
        record(
            Figure(
                f"{r['page']} p95 (view)",
                p(r["view"], 95),
                "s",
                p(r["bare"], 95),
                "bare SQL",
            )
        )
