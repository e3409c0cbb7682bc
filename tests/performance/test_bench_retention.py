"""Disposition benchmark: "Dispose of 100,000 expired records in <= 60 s without blocking capture".

The archive is built once through the real write path, as tests/performance/test_bench_review.py
does: two channels under a 0-day policy and one under a 10-year policy, saved with
retention.policies.save() before anything is sealed; Meta-shaped webhook bodies
(tests/performance/bench_review.py: ~2,000 clients, 50/30/20 % over the three channels, one
conversation of 5,000 messages) stored as Delivery rows and sealed by
messaging.sequencer.process_deliveries(), which fixes every record's retain_until. A legal hold
(retention.holds.create) covers the big conversation and BENCH_RETENTION_HELD others on the 0-day
channels. The plans of the disposition's queries are printed (below), then VACUUM ANALYZE, as
autovacuum would before a nightly run, and the database is copied: each round starts from the
same archive (CREATE DATABASE … TEMPLATE).

Each round, one per BENCH_RETENTION_BATCHES size:
1. Capture as in production, on threads and connections of their own: a webhook thread stores
   one-message deliveries at BENCH_RETENTION_RATE a second (an open loop; half from existing
   clients of the 0-day channels, half from the 10-year channel), a sequencer thread seals what
   is pending. For each delivery: the webhook's INSERT time (what Meta's 200 waits for) and the
   delay until it is sealed. BENCH_RETENTION_BASELINE seconds of capture alone first.
2. retention.disposition.plan() on the main thread while capture goes on (above the approval
   threshold, so it runs at once), timed end to end and by part: hold refresh, counting, each
   batch, the statements inside them; lock waits sampled from pg_stat_activity. If it fails,
   plan() again on a fresh copy of the archive without capture, to have its figures (the
   round still fails).
3. Correctness: held and 10-year records keep their content, the disposed ones have none, what
   was captured during the run is intact, nothing due is left, and verify_archive passes.

Before the rounds: EXPLAIN (ANALYZE, BUFFERS) of a batch's candidate query, of the counting
query and of two of the sequencer's per-call queries, and retention_dispose() on the first batch
in transactions rolled back: as it runs, with every trigger off (their cost), and under
auto_explain (each statement inside it).
Figures go to var/bench/retention.json. Benchmarks report figures; they assert correctness only.

Environment: BENCH_RETENTION_MESSAGES (125,000), BENCH_RETENTION_PER_DELIVERY (4 messages per
webhook body), BENCH_RETENTION_BATCHES ("1000,5000,20000"; 1,000 is DISPOSITION_BATCH's
default), BENCH_RETENTION_RATE (10 deliveries/s), BENCH_RETENTION_BASELINE (10 s),
BENCH_RETENTION_HELD (40 more conversations held),
BENCH_RETENTION_MIN_DUE (100,000: the build must leave at least this many records due),
BENCH_RETENTION_EXPLAIN (1; 0 to skip the plans), BENCH_RETENTION_LOCK_FIRST (experiments, e.g.
"sequencer:5000": rounds in which each batch first takes the sequencer's advisory lock as well;
wrapped around retention.disposition._batch by this file. Taking the ledger's chain head first,
the experiment "head", is what the product does since these measurements found the deadlock).
"""

import contextlib
import itertools
import json
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.db.models import Exists
from django.db.models.functions import Now
from django.test import override_settings
from django.utils import timezone
from psycopg import sql

from archive import ledger
from messaging.models import Channel, Conversation, Delivery, DeliverySeal, Message
from messaging.sequencer import SEQUENCER_LOCK, process_batch, process_deliveries
from retention import disposition, holds, policies
from retention.models import (
    Disposition,
    HoldItem,
    LegalHold,
    RetentionPolicy,
    RetentionRecord,
)
from tests.conftest import TEST_DB, superuser_connect, wipe_archive
from tests.performance.bench_review import (
    BIG_WA_ID,
    CHANNELS,
    CLIENTS,
    NOW,
    Archive,
    client_channel,
    percentile,
)
from tests.performance.conftest import Figure, rate, record, say, seconds, store_deliveries, table
from tests.performance.test_bench_ledger import use_triggers

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "var" / "bench" / "retention.json"
MESSAGES = int(os.environ.get("BENCH_RETENTION_MESSAGES", "125000"))
PER_DELIVERY = int(os.environ.get("BENCH_RETENTION_PER_DELIVERY", "4"))
BATCHES = [int(b) for b in os.environ.get("BENCH_RETENTION_BATCHES", "1000,5000,20000").split(",")]
# 10 a second: at 20 the sequencer alone is at its limit on a shared 2-core machine with this
# archive (seal delays of seconds before any disposition), which hides what disposition adds.
RATE = float(os.environ.get("BENCH_RETENTION_RATE", "10"))
BASELINE = float(os.environ.get("BENCH_RETENTION_BASELINE", "10"))
HELD = int(os.environ.get("BENCH_RETENTION_HELD", "40"))
MIN_DUE = int(os.environ.get("BENCH_RETENTION_MIN_DUE", "100000"))
# Experiments, "head:1000,sequencer:5000": rounds whose batches take that lock first.
LOCK_FIRST = [
    (lock, int(size))
    for lock, size in (
        item.split(":")
        for item in os.environ.get("BENCH_RETENTION_LOCK_FIRST", "").split(",")
        if item
    )
]
FIRST_LOCKS = {
    "head": ("SELECT 1 FROM archive_chainhead WHERE id = 1 FOR UPDATE", []),
    "sequencer": ("SELECT pg_advisory_xact_lock(%s)", [SEQUENCER_LOCK]),
}
EXPLAIN = os.environ.get("BENCH_RETENTION_EXPLAIN", "1") not in ("", "0")
SEAL_DELIVERIES = 100  # Delivery rows stored between two process_deliveries() calls
TARGET = 60.0  # "Dispose of 100,000 expired records in <= 60 s"
TARGET_RECORDS = 100_000
POLICY_PREFIX = "Bench retention: "
LIVE_BASE = 1_000_000_000  # live messages' numbers, far from the build's (distinct wamids)
TEMPLATE = "clientwindow_bench_retention"  # the built archive, copied for each round
REPORTED: dict[str, Any] = {"settings": {}, "rounds": []}


# --------------------------------------------------------------------------- the archive


@dataclass
class World:
    zero: list[Channel]  # under the 0-day policy
    long: Channel  # under the 10-year policy
    hold: LegalHold
    build: dict[str, Any]


def make_world(server_settings: str) -> World:
    channels = [Channel.objects.create(**c) for c in CHANNELS]
    zero, long = channels[:2], channels[2]
    policies.save(
        RetentionPolicy(name=POLICY_PREFIX + "0 days", days=0, rule="Benchmark: not kept."),
        None,
        zero,
        allow_zero=True,
    )
    policies.save(
        RetentionPolicy(name=POLICY_PREFIX + "10 years", days=3650, rule="Benchmark: kept."),
        None,
        [long],
    )
    archive = Archive(MESSAGES)
    say()
    say(
        f"== retention archive: {MESSAGES:,} messages, {PER_DELIVERY} per webhook body,"
        f" channels 1-2 under 0 days, channel 3 under 10 years ({server_settings})"
    )
    began = time.perf_counter()
    storing = sealing = 0.0
    bodies = archive.deliveries(PER_DELIVERY)
    while chunk := list(itertools.islice(bodies, SEAL_DELIVERIES)):
        t0 = time.perf_counter()
        store_deliveries(chunk)
        t1 = time.perf_counter()
        assert process_deliveries() == len(chunk)
        storing, sealing = storing + t1 - t0, sealing + time.perf_counter() - t1
    built = time.perf_counter() - began
    hold, held_seconds = make_hold(zero)
    counts = archive_counts(zero, long)
    say(
        f"   built in {seconds(built)} ({seconds(storing)} storing, {seconds(sealing)} sealing:"
        f" {rate(archive.stats.messages / (storing + sealing))} messages,"
        f" {rate(counts['ledger_entries'] / (storing + sealing))} ledger entries);"
        f" hold created in {seconds(held_seconds)}"
    )
    say(
        "   "
        + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items() if k != "due_kinds")
    )
    say("   due by kind: " + ", ".join(f"{k} {v:,}" for k, v in counts["due_kinds"].items()))
    assert counts["due"] >= MIN_DUE, f"only {counts['due']:,} records due: raise the size"
    build = {
        "messages": archive.stats.messages,
        "deliveries": archive.stats.deliveries,
        "wall_s": built,
        "storing_s": storing,
        "sealing_s": sealing,
        "messages_per_s": archive.stats.messages / (storing + sealing),
        "hold_create_s": held_seconds,
        **counts,
    }
    return World(zero, long, hold, build)


def make_hold(zero: list[Channel]) -> tuple[LegalHold, float]:
    """The big conversation and HELD others on the 0-day channels, under one legal hold."""
    big = Conversation.objects.get(channel=zero[0], key=f"wa:{BIG_WA_ID}")
    others = list(
        Conversation.objects.filter(channel__in=zero)
        .exclude(pk=big.pk)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    step = max(1, len(others) // max(1, HELD))
    chosen = [big.pk, *others[::step][:HELD]]
    t0 = time.perf_counter()
    hold = holds.create(
        None,
        matter=POLICY_PREFIX + "matter",
        reason="Benchmark: what a hold keeps must survive disposition.",
        scope=holds.HoldScope.build(conversations=chosen),
    )
    return hold, time.perf_counter() - t0


def archive_counts(zero: list[Channel], long: Channel) -> dict[str, Any]:
    upto = disposition.frontier()[0]
    expired = RetentionRecord.objects.filter(
        disposed_at__isnull=True, entry_id__lt=upto, retain_until__lte=Now()
    )
    due = disposition.due(upto)
    kinds: dict[str, int] = {}
    for kind in due.values_list("kind", flat=True).iterator(chunk_size=10_000):
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "ledger_entries": upto,
        "records": RetentionRecord.objects.count(),
        "due": sum(kinds.values()),
        "held_expired": expired.filter(Exists(disposition.held())).count(),
        "hold_items": HoldItem.objects.count(),
        "ten_year_records": RetentionRecord.objects.filter(retain_until__gt=Now()).count(),
        "messages_zero_day": Message.objects.filter(channel__in=zero).count(),
        "messages_ten_year": Message.objects.filter(channel=long).count(),
        "due_kinds": dict(sorted(kinds.items())),
    }


def vacuum_analyze() -> float:
    t0 = time.perf_counter()
    with superuser_connect() as conn:
        conn.execute("VACUUM (ANALYZE)")
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- capture


class LiveStream:
    """One-message webhook bodies from existing clients: even ones on the 0-day channels (whose
    conversations and participants are being disposed of), odd ones on the 10-year channel."""

    def __init__(self) -> None:
        self.maker = Archive(10 * LIVE_BASE, big=0, seed=99)
        self.zero = [c for c in range(1, CLIENTS) if client_channel(c) != 2]
        self.long = [c for c in range(1, CLIENTS) if client_channel(c) == 2]
        self.n = 0

    def next(self) -> tuple[bytes, int]:
        pool = self.zero if self.n % 2 == 0 else self.long
        client = pool[(self.n // 2 * 37) % len(pool)]
        changes = self.maker.message(LIVE_BASE + self.n, client)
        body = self.maker.body(client_channel(client), changes)
        self.n += 1
        return body, NOW + self.n


@dataclass
class Capture:
    """One delivery: stored (the webhook's INSERT, what Meta's 200 waits for) at `stored`
    seconds into the round, in `store` s; sealed `delay` s after it was stored."""

    stored: float
    store: float
    delay: float | None = None


class CaptureLoad:
    """Capture as in production, each on a thread and connection of its own: the webhook stores
    one delivery every 1/RATE s (an open loop), the sequencer seals whatever is pending, one
    process_batch() transaction at a time (so each delivery's delay ends at its own commit)."""

    def __init__(self, names: dict[int, str]) -> None:
        self.stream = LiveStream()
        self.names = names
        self.began = time.perf_counter()
        self.stop = threading.Event()  # the webhook stops storing
        self.drained = threading.Event()  # then the sequencer stops once nothing is pending
        self.lock = threading.Lock()
        self.pending: dict[int, Capture] = {}
        self.captures: list[Capture] = []
        self.seal_calls: list[tuple[float, float, int]] = []  # (began, seconds, sealed)
        self.errors: list[tuple[float, str]] = []
        self.phase = "alone"
        self.statements: dict[str, dict[str, list[Any]]] = {"alone": {}, "during": {}}
        self.threads = [
            threading.Thread(target=self.guarded(self.webhook), name="bench-webhook"),
            threading.Thread(target=self.guarded(self.sequencer), name="bench-sequencer"),
        ]
        for thread in self.threads:
            thread.start()

    def now(self) -> float:
        return time.perf_counter() - self.began

    def guarded(self, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                self.names[backend_pid()] = threading.current_thread().name.removeprefix("bench-")
                work()
            except Exception as exc:
                self.errors.append((self.now(), f"{threading.current_thread().name}: {exc!r}"))
            finally:
                connection.close()

        return run

    def webhook(self) -> None:
        i = 0
        while not self.stop.is_set():
            wait = i / RATE - self.now()
            if wait > 0:
                time.sleep(min(wait, 0.05))
                continue
            body = self.stream.next()
            t0 = self.now()
            store_deliveries([body])
            stored = Capture(t0, self.now() - t0)
            # The newest delivery is ours: this thread is the only writer.
            pk = Delivery.objects.order_by("-id").values_list("id", flat=True)[0]
            with self.lock:
                self.pending[pk] = stored
                self.captures.append(stored)
            i += 1

    def sequencer(self) -> None:
        while not (self.drained.is_set() and not self.pending):
            if not self.pending:
                time.sleep(0.005)
                continue
            t0 = self.now()
            sealed_now = 0
            try:
                with connection.execute_wrapper(self.timed):
                    sealed_now = process_batch()  # one transaction, as process_deliveries() loops
            except Exception as exc:  # a deadlock victim: its deliveries wait in the inbox
                detail = getattr(getattr(exc.__cause__, "diag", None), "message_detail", "")
                text = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                self.errors.append(
                    (self.now(), f"{text} {' / '.join((detail or '').splitlines())}")
                )
            t1 = self.now()
            self.seal_calls.append((t0, t1 - t0, sealed_now))
            with self.lock:
                ids = list(self.pending)
            sealed = DeliverySeal.objects.filter(delivery_id__in=ids).values_list(
                "delivery_id", flat=True
            )
            with self.lock:
                for pk in sealed:
                    done = self.pending.pop(pk)
                    done.delay = t1 - (done.stored + done.store)

    def timed(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        """The sequencer's statements: calls and seconds by kind, before and during (set by
        one_round) the disposition."""
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            tally = self.statements[self.phase].setdefault(statement_kind(sql), [0, 0.0])
            tally[0] += 1
            tally[1] += time.perf_counter() - t0

    def finish(self) -> None:
        self.stop.set()
        self.threads[0].join()
        self.drained.set()
        self.threads[1].join()


def latency_summary(captures: list[Capture], errors: int = 0) -> dict[str, Any]:
    if not captures:
        return {"captures": 0}
    store = [c.store for c in captures]
    delays = [c.delay for c in captures if c.delay is not None] or [float("nan")]
    return {
        "captures": len(captures),
        "per_second": len(captures) / max(1e-9, captures[-1].stored - captures[0].stored),
        "store_p50": statistics.median(store),
        "store_p95": percentile(store, 95),
        "store_max": max(store),
        "seal_delay_p50": statistics.median(delays),
        "seal_delay_p95": percentile(delays, 95),
        "seal_delay_p99": percentile(delays, 99),
        "seal_delay_max": max(delays),
        "seal_over_1s": sum(1 for d in delays if d > 1.0),
        "unsealed": sum(1 for c in captures if c.delay is None),
        "sequencer_errors": errors,
    }


# --------------------------------------------------------------------------- disposition


@dataclass
class Batch:
    began: float  # seconds from plan()'s start
    seconds: float
    records: int
    statements: dict[str, float] = field(default_factory=dict)  # kind -> seconds
    append: float = 0.0
    failed: str = ""


@dataclass
class Run:
    """What plan() took, measured on the main thread (capture runs on others)."""

    total: float = 0.0
    report: float = 0.0
    refreshes: list[float] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    last: list[Batch] = field(default_factory=list)  # the call that finds nothing, or fails
    statements: dict[str, list[float]] = field(default_factory=dict)  # kind -> [calls, s]
    pk: int | None = None
    current: Batch | None = None
    began: float = 0.0


def statement_kind(sql: str) -> str:
    text = " ".join(sql.split())
    if "retention_dispose(" in text:
        return "retention_dispose()"
    if "archive_chainhead" in text:
        return "ledger: chain head " + ("lock" if "FOR UPDATE" in text else "update/read")
    if "pg_advisory_xact_lock" in text:
        return "advisory lock"
    if text.startswith('SELECT "retention_record"."seq" AS "entry_id" FROM') and "LIMIT" in text:
        return "due(): pick the batch"
    if "INSERT INTO retention_holditem" in text:
        return "hold refresh: insert items"
    text = re.sub(r"%s(, %s)+", "%s, ...", text)
    return text[:110]


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def instrumented(monkeypatch: pytest.MonkeyPatch, lock_first: str) -> Iterator[Run]:
    """Time plan()'s parts on the main thread: hold refreshes, report(), each batch (and the
    ledger append inside it), every statement. `lock_first` (an experiment, not the product):
    each batch takes that lock (FIRST_LOCKS) before anything else, in the order capture does."""
    run = Run()
    real_batch, real_report = disposition._batch, disposition.report
    real_refresh, real_append = holds.refresh_active, ledger.append

    def batch(d: Disposition, after: int, *slices: Any) -> int | None:
        t0 = time.perf_counter()
        current = run.current = Batch(t0 - run.began, 0.0, 0)
        before = d.disposed
        last: int | None = None
        try:
            if lock_first:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(*FIRST_LOCKS[lock_first])
                    last = real_batch(d, after, *slices)
            else:
                last = real_batch(d, after, *slices)
            current.records = d.disposed - before
        except Exception as exc:
            current.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            raise
        finally:
            current.seconds = time.perf_counter() - t0
            run.current = None
            (run.batches if current.records else run.last).append(current)
        return last

    def report(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real_report(*args, **kwargs)
        finally:
            run.report = time.perf_counter() - t0

    def refresh() -> int:
        t0 = time.perf_counter()
        try:
            return real_refresh()
        finally:
            if on_main_thread():
                run.refreshes.append(time.perf_counter() - t0)

    def append(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real_append(*args, **kwargs)
        finally:
            if on_main_thread() and run.current is not None:
                run.current.append += time.perf_counter() - t0

    def timer(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent = time.perf_counter() - t0
            kind = statement_kind(sql)
            tally = run.statements.setdefault(kind, [0, 0.0])
            tally[0] += 1
            tally[1] += spent
            if run.current is not None:
                run.current.statements[kind] = run.current.statements.get(kind, 0.0) + spent

    monkeypatch.setattr(disposition, "_batch", batch)
    monkeypatch.setattr(disposition, "report", report)
    monkeypatch.setattr(holds, "refresh_active", refresh)
    monkeypatch.setattr(ledger, "append", append)
    try:
        with connection.execute_wrapper(timer):
            yield run
    finally:
        monkeypatch.undo()


def dispose(
    batch: int, monkeypatch: pytest.MonkeyPatch, lock_first: str = ""
) -> tuple[Run, Disposition]:
    """plan() with DISPOSITION_BATCH = batch, below the approval threshold: it runs at once."""
    with (
        override_settings(DISPOSITION_BATCH=batch, DISPOSITION_APPROVAL_THRESHOLD=10**9),
        instrumented(monkeypatch, lock_first) as run,
    ):
        run.began = time.perf_counter()
        planned = disposition.plan()
        run.total = time.perf_counter() - run.began
    assert planned is not None, "nothing was due"
    run.pk = planned.pk
    return run, Disposition.objects.get(pk=planned.pk)


class LockWaits(threading.Thread):
    """Samples pg_stat_activity every INTERVAL s: which backend waits on a lock, in which
    statement, behind whom (the webhook, sequencer and disposition backends are named)."""

    INTERVAL = 0.05

    def __init__(self, names: dict[int, str]) -> None:
        super().__init__(name="bench-lock-waits", daemon=True)
        self.names = names
        self.halt = threading.Event()
        self.seen: dict[tuple[str, str, str, str], float] = {}

    def name_of(self, pid: int) -> str:
        return self.names.get(pid, "other")

    def run(self) -> None:
        with superuser_connect() as conn:
            while not self.halt.is_set():
                rows = conn.execute(
                    "SELECT pid, wait_event, query, pg_blocking_pids(pid) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                ).fetchall()
                for pid, event, query, blockers in rows:
                    key = (
                        self.name_of(pid),
                        event,
                        statement_kind(query)[:80],
                        ", ".join(sorted({self.name_of(b) for b in blockers})),
                    )
                    self.seen[key] = self.seen.get(key, 0.0) + self.INTERVAL
                self.halt.wait(self.INTERVAL)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"waiter": k[0], "lock": k[1], "statement": k[2], "behind": k[3], "seconds": v}
            for k, v in sorted(self.seen.items(), key=lambda kv: -kv[1])
        ]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


# --------------------------------------------------------------------------- plans


def explain(sql: str, params: Any) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def explain_queries(batch: int) -> dict[str, str]:
    """The candidate query of one batch and the plan's counting query, as the ORM sends them,
    and two of the sequencer's per-call queries."""
    upto, cutoff = disposition.frontier()
    due = disposition.due(upto, cutoff)
    shapes = {
        "due(): pick the batch": due.order_by("entry_id").values_list("entry_id", flat=True)[
            :batch
        ],
        "report(): count by kind and policy": due.values_list("kind", "policy_id"),
        # Capture's side, as messaging/sequencer.py asks: what sets the sequencer's pace here.
        "sequencer: pending deliveries": Delivery.objects.filter(seal__isnull=True).order_by("id")[
            :100
        ],
        "sequencer: messages already archived": Message.objects.filter(
            wamid__in=["wamid.bench-not-there"]
        ).values_list("channel_id", "wamid"),
    }
    plans = {}
    for name, query in shapes.items():
        sql, params = query.query.get_compiler(using="default").as_sql()
        plans[name] = explain(sql, params)
        say()
        say(f"== EXPLAIN (ANALYZE, BUFFERS), {name} (before any disposition)")
        say(plans[name])
    return plans


AUTO_EXPLAIN = [
    "LOAD 'auto_explain'",
    "SET LOCAL auto_explain.log_min_duration = 1",  # the triggers' own statements stay silent
    "SET LOCAL auto_explain.log_analyze = on",
    "SET LOCAL auto_explain.log_buffers = on",
    "SET LOCAL auto_explain.log_triggers = on",
    "SET LOCAL auto_explain.log_nested_statements = on",
    "SET LOCAL client_min_messages = log",
]


def dispose_rolled_back(seqs: list[int], setup: list[str]) -> tuple[float, int, list[str]]:
    """retention_dispose(seqs) as the superuser, in a transaction rolled back."""
    notices: list[str] = []
    with superuser_connect() as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        with conn.transaction(force_rollback=True):
            (pk,) = conn.execute(
                "INSERT INTO retention_disposition (state, upto_seq, cutoff, planned,"
                " planned_by_kind, planned_by_policy, disposed, media_deleted, error)"
                " VALUES ('running', 0, now(), 0, '{}', '{}', 0, 0, '') RETURNING id"
            ).fetchone()
            for statement in setup:
                conn.execute(statement)
            t0 = time.perf_counter()
            (rows,) = conn.execute(
                "SELECT count(*) FROM retention_dispose(%s::bigint[], %s)", [seqs, pk]
            ).fetchone()
            spent = time.perf_counter() - t0
    return spent, rows, notices


def explain_dispose(batch: int) -> dict[str, Any]:
    """retention_dispose() on the first batch, each time rolled back: as it runs, with every
    trigger off (their cost), and under auto_explain (each statement inside it)."""
    seqs = list(
        disposition.due(disposition.frontier()[0])
        .order_by("entry_id")
        .values_list("entry_id", flat=True)[:batch]
    )
    variants = {
        "as it runs (first call: cold)": [],
        "every trigger off (session_replication_role = replica)": [
            "SET LOCAL session_replication_role = replica"
        ],
        "as it runs (again: warm)": [],
        "under auto_explain (ANALYZE, nested statements)": AUTO_EXPLAIN,
    }
    totals, notices = {}, []
    for name, setup in variants.items():
        spent, rows, notices = dispose_rolled_back(seqs, setup)
        assert rows == len(seqs)
        totals[name] = spent
    steps = []
    for notice in notices:  # the auto_explain run's
        found = re.search(r"duration: ([\d.]+) ms", notice)
        query = re.search(r"Query Text: (.*?)(?:\n\S|\n  \S|$)", notice, re.S)
        if not (found and query) or "retention_dispose($1" in notice:
            continue
        scanned = re.findall(r"actual time=[\d.]+\.\.[\d.]+ rows=(\d+)", notice)
        triggers = re.findall(r"Trigger (\S+): time=([\d.]+) calls=(\d+)", notice)
        steps.append(
            {
                "ms": float(found.group(1)),
                "query": " ".join(query.group(1).split())[:110],
                "rows": max((int(n) for n in scanned), default=0),
                "triggers": {t: [float(ms), int(calls)] for t, ms, calls in triggers},
                "plan": notice,
            }
        )
    say()
    say(
        table(
            [f"retention_dispose() on {len(seqs):,} seqs (rolled back)", "time"],
            [[name, seconds(spent)] for name, spent in totals.items()],
        )
    )
    say(
        table(
            [
                "statement inside retention_dispose() (auto_explain, >= 1 ms)",
                "ms",
                "rows",
                "triggers",
            ],
            [
                [
                    s["query"],
                    f"{s['ms']:,.1f}",
                    f"{s['rows']:,}",
                    ", ".join(f"{t} {ms:,.0f} ms x{n:,}" for t, (ms, n) in s["triggers"].items())
                    or "-",
                ]
                for s in steps
            ],
        )
    )
    return {"seqs": len(seqs), "totals": totals, "steps": steps}


# Issue 20: the append-only trigger per row or per statement, on the same 1,000 seqs in one run.
# retention_dispose() rolled back, the designs alternated forward then backward
# (BENCH_DISPOSE_PAIRED rounds), so that the machine's noise and the dead rows each rolled-back
# call leaves fall on every design alike; "all triggers off" is the ceiling (no trigger at all).
PAIRED = int(os.environ.get("BENCH_DISPOSE_PAIRED", "4"))
PAIRED_VARIANTS = {
    "row triggers (before issue 20)": ("row", []),
    "statement guards, append_only per row (before archive 0008)": ("guards", []),
    "statement triggers (as migrated)": ("statement", []),
    "all triggers off (session_replication_role = replica)": (
        "statement",
        ["SET LOCAL session_replication_role = replica"],
    ),
}


def paired_dispose(batch: int) -> dict[str, list[float]]:
    seqs = list(
        disposition.due(disposition.frontier()[0])
        .order_by("entry_id")
        .values_list("entry_id", flat=True)[:batch]
    )
    current = ["statement"]  # as migrated
    spent: dict[str, list[float]] = {name: [] for name in PAIRED_VARIANTS}
    order = list(PAIRED_VARIANTS)
    try:
        dispose_rolled_back(seqs, [])  # warm
        for i in range(PAIRED):
            for name in order if i % 2 == 0 else order[::-1]:
                design, setup = PAIRED_VARIANTS[name]
                use_triggers(design, current)
                took, rows, _ = dispose_rolled_back(seqs, setup)
                assert rows == len(seqs)
                spent[name].append(took)
    finally:
        use_triggers("statement", current)
    say()
    say(
        table(
            ["design", "median", "min", "max", "per 1,000 records", "1M at this rate"],
            [
                [
                    name,
                    seconds(statistics.median(times)),
                    seconds(min(times)),
                    seconds(max(times)),
                    seconds(statistics.median(times) * 1_000 / len(seqs)),
                    seconds(statistics.median(times) * 1_000_000 / len(seqs)),
                ]
                for name, times in spent.items()
            ],
            title=f"== retention_dispose() on the same {len(seqs):,} seqs, rolled back, designs"
            f" alternated ({PAIRED} rounds, forward then backward); retention_dispose() alone,"
            " not a whole batch",
        )
    )
    return spent


# --------------------------------------------------------------------------- correctness


def content_state(world: World, upto: int) -> dict[str, int]:
    """What must survive among the entries below `upto`: held and 10-year messages with a text,
    and the committed contents of every held or unexpired entry."""
    held = HoldItem.objects.filter(hold=world.hold).values("entry_id")
    held_messages = Message.objects.filter(entry_id__in=held, entry_id__lt=upto)
    long_messages = Message.objects.filter(channel=world.long, entry_id__lt=upto)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM archive_content c WHERE c.seq < %s AND (c.seq IN (SELECT seq"
            " FROM retention_holditem WHERE hold_id = %s) OR c.seq IN (SELECT seq FROM"
            " retention_record WHERE retain_until > now()))",
            [upto, world.hold.pk],
        )
        (kept_contents,) = cursor.fetchone()
    return {
        "held_messages": held_messages.count(),
        "held_with_text": held_messages.exclude(text="").count(),
        "ten_year_with_text": long_messages.exclude(text="").count(),
        "kept_contents": kept_contents,
    }


def check(world: World, done: Disposition, before: tuple[int, dict[str, int]]) -> dict[str, Any]:
    """Held and 10-year content kept, due content gone, live capture untouched."""
    after = content_state(world, before[0])
    assert after == before[1], f"kept content changed: {before[1]} -> {after}"
    disposed = RetentionRecord.objects.filter(disposition=done)
    assert disposed.count() == done.disposed, "the disposition's count is not its records'"
    held = HoldItem.objects.filter(hold=world.hold).values("entry_id")
    assert not disposed.filter(entry_id__in=held).exists(), "a held record was disposed of"
    assert not disposed.filter(retain_until__gt=done.cutoff).exists(), "disposed of too early"
    gone = Message.objects.filter(channel__in=world.zero, entry_id__lt=done.upto_seq).exclude(
        entry_id__in=held
    )
    assert gone.exists()
    kept = list(gone.exclude(text="", wamid__startswith="disposed:").values_list("entry_id")[:5])
    assert not kept, f"0-day messages sealed before the plan still have content: {kept}"
    bodies = Delivery.objects.filter(seal__entry__in=disposed.values("entry_id"))
    assert not bodies.exclude(body=b"").exists(), "a disposed delivery seal kept its body"
    live = Message.objects.filter(entry_id__gte=done.upto_seq)
    assert not live.filter(wamid__startswith="disposed:").exists(), "a live message was disposed of"
    assert not live.filter(type="text", text="").exists(), "a live text message lost its text"
    left = disposition.due(done.upto_seq, done.cutoff).count()
    assert left == 0, f"{left} records still due after the disposition"
    # Not asserted (a question for the product): a message sealed while its conversation was
    # being disposed of joins the blanked conversation instead of starting a new one.
    # Those sealed before the cutoff extended their conversation only up to the cutoff.
    joined = live.filter(conversation__key__startswith="disposed:")
    orphans, early = joined.count(), joined.filter(entry__sealed_at__lte=done.cutoff).count()
    say(
        f"   messages captured during the run that joined a disposed conversation: {orphans}"
        f" ({early} of them sealed before the plan's cutoff)"
    )
    return {
        "disposed": done.disposed,
        "live_in_disposed_conversation": orphans,
        "live_in_disposed_conversation_before_cutoff": early,
        "messages_disposed": gone.count(),
        "live_messages_kept": live.count(),
        **{f"kept_{k}": v for k, v in after.items()},
    }


def verify() -> tuple[float, str]:
    out = StringIO()
    t0 = time.perf_counter()
    call_command("verify_archive", stdout=out)  # exits 1 (SystemExit) if the chain is broken
    return time.perf_counter() - t0, out.getvalue().strip()


# --------------------------------------------------------------------------- rounds


def clone_database(source: str, target: str) -> float:
    """`target` as a copy of `source` (CREATE DATABASE … TEMPLATE), with the test database's
    owner and grants (tests/conftest.py); nobody may be connected to `source`."""
    connections.close_all()
    owner = sql.Identifier(settings.DATABASES["owner"]["USER"])
    runtime = sql.Identifier(settings.DATABASES["default"]["USER"])
    name = sql.Identifier(target)
    t0 = time.perf_counter()
    with superuser_connect("postgres") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                name, sql.Identifier(source), owner
            )
        )
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(name, runtime))
        if settings.DATABASE_AUDITOR_ROLE:
            auditor = sql.Identifier(settings.DATABASE_AUDITOR_ROLE)
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(name, auditor))
    return time.perf_counter() - t0


def drop_database(name: str) -> None:
    with superuser_connect("postgres") as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def one_round(
    world: World, batch: int, monkeypatch: pytest.MonkeyPatch, lock_first: str
) -> list[str]:
    """Capture alone, then plan() while capture goes on; if the disposition fails, once more
    on a fresh copy without capture (to measure it). Return what went wrong."""
    names: dict[int, str] = {}
    label = f"{batch:,}" + (f", {lock_first} lock taken first (experiment)" if lock_first else "")
    load_before = os.getloadavg()
    load = CaptureLoad(names)
    say(f"   DISPOSITION_BATCH {label}: capture alone for {BASELINE:.0f} s ...")
    time.sleep(BASELINE)
    holds.refresh_active()  # as the 15-minute schedule would: baseline messages join the hold
    upto = disposition.frontier()[0]
    before = (upto, content_state(world, upto))
    names[backend_pid()] = "disposition"
    waits = LockWaits(names)
    waits.start()
    started = load.now()
    load.phase = "during"
    try:
        run, done = dispose(batch, monkeypatch, lock_first)
    finally:
        ended = load.now()
        waits.halt.set()
        waits.join()
        load.finish()
    load_after = os.getloadavg()
    figures: dict[str, Any] = {
        "batch_size": batch,
        "lock_first": lock_first,
        "load_before": load_before,
    }
    figures["with_capture"] = disposition_figures(run, done, f"{label}, capture going on")
    figures["load_after"] = load_after
    figures["capture"] = capture_figures(load, started, ended)
    figures["lock_waits"] = waits.rows()
    show_waits(figures["lock_waits"])
    problems = []
    if done.state != Disposition.State.DONE:
        problems.append(f"DISPOSITION_BATCH {label}, capture going on: {done.error}")
        say(f"   FAILED: {problems[-1]}")
        spent = clone_database(TEMPLATE, TEST_DB)
        say(f"   ... again on the same archive (restored in {seconds(spent)}), without capture:")
        upto = disposition.frontier()[0]
        before = (upto, content_state(world, upto))
        run, done = dispose(batch, monkeypatch, lock_first)
        figures["alone"] = disposition_figures(run, done, f"{label}, again without capture")
    REPORTED["rounds"].append(figures)
    try:
        assert done.state == Disposition.State.DONE, f"{done.state}: {done.error}"
        figures["checked"] = check(world, done, before)
        figures["verify_s"], figures["verify"] = verify()
        say(f"   verify_archive {seconds(figures['verify_s'])}: {figures['verify']}")
    except AssertionError as exc:
        problems.append(f"DISPOSITION_BATCH {label}: {exc}")
        say(f"   FAILED: {problems[-1]}")
    say(f"   load average (1, 5, 15 min) before {load_before}, after {load_after}")
    return problems


def disposition_figures(run: Run, done: Disposition, title: str) -> dict[str, Any]:
    times = [b.seconds for b in run.batches] or [0.0]
    per_second = done.disposed / run.total if run.total else 0.0
    counting = run.report - (run.refreshes[0] if run.refreshes else 0.0)
    figures = {
        "state": done.state,
        "error": done.error,
        "planned": done.planned,
        "disposed": done.disposed,
        "plan_total_s": run.total,
        "report_s": run.report,
        "hold_refresh_s": run.refreshes,
        "counting_s": counting,
        "batches": len(run.batches),
        "batches_s": sum(times),
        "batch_p50_s": statistics.median(times),
        "batch_p95_s": percentile(times, 95),
        "batch_max_s": max(times),
        "records_per_s": per_second,
        "last_call": [asdict(b) for b in run.last],
        "batch_detail": [asdict(b) for b in run.batches],
        "statements": dict(sorted(run.statements.items(), key=lambda kv: -kv[1][1])),
    }
    picks = [b.statements.get("due(): pick the batch", 0.0) for b in run.batches]
    figures["pick_first5_last5_s"] = (
        [statistics.mean(picks[:5]), statistics.mean(picks[-5:])] if picks else []
    )
    last = run.last[0] if run.last else None
    say()
    say(
        table(
            ["plan() end to end", "value"],
            [
                ["state", f"{done.state} {done.error.splitlines()[0][:120] if done.error else ''}"],
                ["records planned / disposed", f"{done.planned:,} / {done.disposed:,}"],
                ["plan() end to end", seconds(run.total)],
                ["  hold refresh (report, run)", " + ".join(seconds(r) for r in run.refreshes)],
                ["  counting (report() less its refresh)", seconds(counting)],
                ["  batches", f"{len(run.batches)}: {seconds(sum(times))}"],
                [
                    "  batch p50 / p95 / max",
                    " / ".join(
                        seconds(figures[k]) for k in ("batch_p50_s", "batch_p95_s", "batch_max_s")
                    ),
                ],
                [
                    "  last call (" + ("failed" if last and last.failed else "finds nothing") + ")",
                    seconds(last.seconds) if last else "-",
                ],
                [
                    "  due() pick: first 5 / last 5 batches",
                    " / ".join(seconds(v) for v in figures["pick_first5_last5_s"]) or "-",
                ],
                ["records/s (end to end)", rate(per_second)],
                [
                    f"{TARGET_RECORDS:,} records at this rate",
                    seconds(TARGET_RECORDS / per_second) if per_second else "-",
                ],
            ],
            title=f"== disposition, DISPOSITION_BATCH = {title}",
        )
    )
    parts: dict[str, float] = {}
    for b in run.batches:
        for kind, spent in b.statements.items():
            parts[kind] = parts.get(kind, 0.0) + spent
        parts["ledger.append() (its statements included)"] = (
            parts.get("ledger.append() (its statements included)", 0.0) + b.append
        )
    if run.batches:
        say(
            table(
                ["inside the batches", "total", "per batch"],
                [
                    [k[:100], seconds(v), seconds(v / len(run.batches))]
                    for k, v in sorted(parts.items(), key=lambda kv: -kv[1])[:8]
                ],
            )
        )
    if done.state == Disposition.State.DONE:
        record(
            Figure(
                f"dispose {done.disposed:,} records, batch {title}",
                run.total,
                "s",
                target=TARGET * done.disposed / TARGET_RECORDS,
            )
        )
    return figures


def capture_figures(load: CaptureLoad, started: float, ended: float) -> dict[str, Any]:
    phases = {
        "alone": [c for c in load.captures if c.stored < started],
        "during disposition": [c for c in load.captures if started <= c.stored <= ended],
    }
    errors = {
        "alone": [e for e in load.errors if e[0] < started],
        "during disposition": [e for e in load.errors if started <= e[0] <= ended],
    }
    figures = {
        name: latency_summary(captures, len(errors[name])) for name, captures in phases.items()
    }
    figures["errors"] = load.errors
    figures["timeline"] = {
        "disposition": [started, ended],
        "captures": [asdict(c) for c in load.captures],
        "seal_calls": load.seal_calls,
    }
    rows = []
    for name in phases:
        s = figures[name]
        rows.append(
            [
                name,
                f"{s['captures']:,}",
                f"{s['per_second']:.1f}",
                " / ".join(f"{s[k] * 1000:,.0f}" for k in ("store_p50", "store_p95", "store_max")),
                " / ".join(
                    f"{s[k] * 1000:,.0f}"
                    for k in (
                        "seal_delay_p50",
                        "seal_delay_p95",
                        "seal_delay_p99",
                        "seal_delay_max",
                    )
                ),
                str(s["seal_over_1s"]),
                str(s["sequencer_errors"]),
            ]
        )
    say(
        table(
            [
                "capture",
                "deliveries",
                "per s",
                "webhook store p50/p95/max ms",
                "stored -> sealed p50/p95/p99/max ms",
                "> 1 s",
                "sequencer errors",
            ],
            rows,
            title=f"== capture at {RATE:g} deliveries/s (half 0-day clients, half 10-year): the"
            " webhook's INSERT, and the delay until the sequencer has sealed it",
        )
    )
    for at, error in load.errors:
        say(f"   sequencer error at {at:,.1f} s: {error[:400]}")
    figures["sequencer_statements"] = load.statements
    say(
        table(
            ["sequencer: statement", "phase", "calls", "total", "per call"],
            [
                [kind[:100], phase, f"{n:,}", seconds(spent), seconds(spent / n)]
                for phase, tallies in load.statements.items()
                for kind, (n, spent) in sorted(tallies.items(), key=lambda kv: -kv[1][1])[:5]
            ],
            title="== where the sequencer's time went (its 5 slowest statements by total, per"
            " phase; the ledger's COPY is not included)",
        )
    )
    return figures


def show_waits(waits: list[dict[str, Any]]) -> None:
    if not waits:
        say("== no lock waits sampled during the disposition")
        return
    say(
        table(
            ["waiting backend", "lock", "in statement", "behind", "sampled s"],
            [
                [w["waiter"], w["lock"], w["statement"], w["behind"], f"{w['seconds']:.2f}"]
                for w in waits[:10]
            ],
            title=f"== lock waits during the disposition (pg_stat_activity every"
            f" {LockWaits.INTERVAL * 1000:.0f} ms)",
        )
    )


@pytest.fixture
def retention_archive(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            connections.close_all()
            drop_database(TEMPLATE)
            wipe_archive()
            with superuser_connect() as conn:  # what sealing queued (lexicon scans)
                conn.execute("TRUNCATE django_q_ormq, django_q_task")


def test_disposition(
    retention_archive: None, server_settings: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    REPORTED["settings"] = {
        "server": server_settings,
        "messages": MESSAGES,
        "per_delivery": PER_DELIVERY,
        "batches": BATCHES,
        "lock_first": LOCK_FIRST,
        "capture_rate": RATE,
        "baseline_s": BASELINE,
        "cpus": os.cpu_count(),
    }
    problems: list[str] = []
    try:
        wipe_archive()
        world = make_world(server_settings)
        REPORTED["build"] = world.build
        if EXPLAIN:
            REPORTED["plans"] = explain_queries(BATCHES[0])
            REPORTED["plans"]["retention_dispose"] = explain_dispose(BATCHES[0])
        REPORTED["vacuum_analyze_s"] = vacuum_analyze()
        REPORTED["snapshot_s"] = clone_database(TEST_DB, TEMPLATE)
        say(
            f"   VACUUM ANALYZE {seconds(REPORTED['vacuum_analyze_s'])}; archive copied for the"
            f" next rounds in {seconds(REPORTED['snapshot_s'])}"
        )
        rounds = [(b, "") for b in BATCHES] + [(b, lock) for lock, b in LOCK_FIRST]
        for i, (batch, lock_first) in enumerate(rounds):
            if i:
                spent = clone_database(TEMPLATE, TEST_DB)
                say()
                say(f"== the same archive again (restored from its copy in {seconds(spent)})")
            problems += one_round(world, batch, monkeypatch, lock_first)
    finally:
        REPORTED["problems"] = problems
        write_report()
    assert not problems, "\n".join(problems)


def write_report() -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORTED["written_at"] = timezone.now().isoformat()
    REPORT.write_text(json.dumps(REPORTED, indent=2, default=str) + "\n")
    say(f"   figures written to {REPORT.relative_to(ROOT)}")


# --------------------------------------------------------------------------- 1M in 5 minutes

# Issue 20: "disposition of 1,000,000 expired records <= 5 minutes without slowing capture below
# 1,000 msg/s while it runs". An archive of BENCH_DISPOSE_RECORDS due records (about that many
# messages on the two 0-day channels, 20 per webhook body, sealed by the sequencer), copied
# once; each round restores it, swaps in the trigger design it names ("row": archive 0002/0004
# and retention 0007, as before issue 20; "guards": archive 0006 and retention 0010 with the
# append-only tables' `append_only` trigger still per row; "statement": as migrated, that trigger
# once per statement too; tests/performance/test_bench_ledger.py use_triggers()), starts
# capture beside it (a webhook thread storing 20-message deliveries for the 10-year channel at
# BENCH_DISPOSE_CAPTURE_RATE messages/s, a sequencer thread sealing them with process_batch()),
# and runs plan() with DISPOSITION_BATCH as the round names. Rounds: BENCH_DISPOSE_ROUNDS,
# "design:batch,…". Run with CLIENTWINDOW_THROWAWAY_DURABLE=1 for fsync on, as `make run` is.
DISPOSE_RECORDS = int(os.environ.get("BENCH_DISPOSE_RECORDS", "20000"))
CAPTURE_RATE = float(os.environ.get("BENCH_DISPOSE_CAPTURE_RATE", "1000"))
CAPTURE_BATCH = 20
# "design:batch[:slice seconds]"; slice 0 = fixed batches, as before issue 20
DISPOSE_ROUNDS = [
    (parts[0], int(parts[1]), float(parts[2]) if len(parts) > 2 else disposition.SLICE_SECONDS)
    for parts in (
        item.split(":")
        for item in os.environ.get(
            "BENCH_DISPOSE_ROUNDS", "row:1000:0,statement:1000:0,statement:1000,statement:5000:0"
        ).split(",")
    )
]
DISPOSE_TEMPLATE = "clientwindow_bench_dispose"
DISPOSE_TARGET_S = 300.0  # for 1,000,000 records
HEAD_LOCK = "FROM archive_chainhead WHERE id = 1 FOR UPDATE"


class SealingLoad:
    """Capture at a fixed rate: deliveries of CAPTURE_BATCH messages from the 10-year channel's
    clients, stored on one thread (an open loop), sealed on another by process_batch(); the
    sequencer's waits for the chain head are timed statement by statement."""

    def __init__(self) -> None:
        self.maker = Archive(10 * LIVE_BASE, big=0, seed=7)
        self.clients = [c for c in range(1, CLIENTS) if client_channel(c) == 2]
        self.stop = threading.Event()
        self.began = time.perf_counter()
        self.head_waits: list[tuple[float, float]] = []  # (when, seconds)
        self.sealed: list[tuple[float, int]] = []  # (when, deliveries sealed by the call)
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self.guarded(self.webhook)),
            threading.Thread(target=self.guarded(self.sequencer)),
        ]
        if CAPTURE_RATE <= 0:  # BENCH_DISPOSE_CAPTURE_RATE=0: disposition alone
            self.threads = []
        for thread in self.threads:
            thread.start()

    def now(self) -> float:
        return time.perf_counter() - self.began

    def guarded(self, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except Exception as exc:
                self.errors.append(f"{threading.current_thread().name}: {exc!r}")
            finally:
                connection.close()

        return run

    def webhook(self) -> None:
        per_second = CAPTURE_RATE / CAPTURE_BATCH
        n = i = 0
        while not self.stop.is_set():
            wait = i / per_second - self.now()
            if wait > 0:
                time.sleep(min(wait, 0.05))
                continue
            changes: list[dict[str, Any]] = []
            for _ in range(CAPTURE_BATCH):
                client = self.clients[(n * 37) % len(self.clients)]
                changes += self.maker.message(LIVE_BASE + n, client)
                n += 1
            store_deliveries([(self.maker.body(2, changes), NOW + i)])
            i += 1

    def sequencer(self) -> None:
        while not self.stop.is_set():
            with connection.execute_wrapper(self.timed):
                count = process_batch()
            if count:
                self.sealed.append((self.now(), count))
            else:
                time.sleep(0.005)

    def timed(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if HEAD_LOCK in sql:
                self.head_waits.append((self.now(), time.perf_counter() - t0))

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def window(self, start: float, end: float) -> dict[str, float]:
        sealed = sum(n for t, n in self.sealed if start <= t <= end) * CAPTURE_BATCH
        waits = [w for t, w in self.head_waits if start <= t <= end]
        return {
            "messages_per_s": sealed / max(end - start, 1e-9),
            "head_wait_max_s": max(waits, default=0.0),
            "head_wait_total_s": sum(waits),
        }


def build_dispose_archive() -> dict[str, Any]:
    """Two channels under 0 days (what is disposed of) and one under 10 years (what capture
    writes to), sealed by the real sequencer in deliveries of 20."""
    channels = [Channel.objects.create(**c) for c in CHANNELS]
    policies.save(
        RetentionPolicy(name=POLICY_PREFIX + "0 days", days=0, rule="Benchmark: not kept."),
        None,
        channels[:2],
        allow_zero=True,
    )
    policies.save(
        RetentionPolicy(name=POLICY_PREFIX + "10 years", days=3650, rule="Benchmark: kept."),
        None,
        [channels[2]],
    )
    archive = Archive(int(DISPOSE_RECORDS * 1.05), big=0)
    began = time.perf_counter()
    bodies = archive.deliveries(CAPTURE_BATCH)
    while chunk := list(itertools.islice(bodies, SEAL_DELIVERIES)):
        store_deliveries(chunk)
        process_deliveries()
    built = time.perf_counter() - began
    due = disposition.due(disposition.frontier()[0]).count()
    say(
        f"== disposition beside capture: {archive.stats.messages:,} messages sealed in"
        f" {seconds(built)}; {due:,} records due"
    )
    return {"messages": archive.stats.messages, "due": due, "build_s": built}


def dispose_round(
    design: str, batch: int, slice_s: float, settings_line: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setattr(disposition, "SLICE_SECONDS", slice_s)
    current = ["statement"]  # as migrated
    use_triggers(design, current)
    load = SealingLoad()
    try:
        time.sleep(BASELINE)
        alone = load.window(0.0, load.now())
        started = load.now()
        with (
            override_settings(DISPOSITION_BATCH=batch, DISPOSITION_APPROVAL_THRESHOLD=10**9),
            instrumented(monkeypatch, "") as run,
        ):
            run.began = time.perf_counter()
            done = disposition.plan()
            run.total = time.perf_counter() - run.began
        ended = load.now()
    finally:
        load.finish()
        use_triggers("statement", current)
    assert not load.errors, load.errors
    assert done is not None and done.state == Disposition.State.DONE, done and done.error
    sizes = [b.records for b in run.batches]
    title = f"{batch:,}, slices of {slice_s:g} s, {design} triggers, beside capture"
    disposition_figures(run, done, title)
    during = load.window(started, ended)
    spent = ended - started
    assert not disposition.due(disposition.frontier()[0]).exists()
    return {
        "design": design,
        "batch": batch,
        "slice_s": slice_s,
        "batch_sizes": sizes,
        "disposed": done.disposed,
        "seconds": spent,
        "records_per_s": done.disposed / spent,
        "for_1m_s": 1_000_000 / (done.disposed / spent),
        "capture_alone": alone,
        "capture_during": during,
        "server": settings_line,
    }


@pytest.fixture
def dispose_archive(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    with django_db_blocker.unblock():
        try:
            wipe_archive()
            built = build_dispose_archive()
            vacuum_analyze()
            if EXPLAIN:  # where a batch's time goes, statement by statement and in triggers
                built["explain"] = explain_dispose(1_000)
            if PAIRED:  # the trigger designs on the same seqs, alternated
                built["paired"] = paired_dispose(1_000)
            clone_database(TEST_DB, DISPOSE_TEMPLATE)
            yield built
        finally:
            connections.close_all()
            drop_database(DISPOSE_TEMPLATE)
            wipe_archive()
            with superuser_connect() as conn:
                conn.execute("TRUNCATE django_q_ormq, django_q_task")


def test_dispose_beside_capture(
    dispose_archive: dict[str, Any], server_settings: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds = []
    for i, (design, batch, slice_s) in enumerate(DISPOSE_ROUNDS):
        if i:
            clone_database(DISPOSE_TEMPLATE, TEST_DB)
        rounds.append(dispose_round(design, batch, slice_s, server_settings, monkeypatch))
        verify()  # raises if the chain does not verify
    rows = [
        [
            f"{r['design']} triggers, batch {r['batch']:,}"
            + (
                f", slices of {r['slice_s']:g} s (max {max(r['batch_sizes'], default=0):,})"
                if r["slice_s"]
                else ""
            ),
            f"{r['disposed']:,}",
            seconds(r["seconds"]),
            rate(r["records_per_s"]),
            seconds(r["for_1m_s"]),
            rate(r["capture_alone"]["messages_per_s"]),
            rate(r["capture_during"]["messages_per_s"]),
            seconds(r["capture_during"]["head_wait_max_s"]),
            seconds(r["capture_during"]["head_wait_total_s"]),
        ]
        for r in rounds
    ]
    say()
    say(
        table(
            [
                "round",
                "disposed",
                "time",
                "records/s",
                "1M at this rate",
                "capture alone",
                "capture during",
                "head wait max",
                "head wait total",
            ],
            rows,
            title=f"== disposition of {dispose_archive['due']:,} due records beside capture"
            f" offered at {CAPTURE_RATE:,.0f} msg/s ({CAPTURE_BATCH} per delivery;"
            f" {server_settings}); target: 1,000,000 in <= {seconds(DISPOSE_TARGET_S)},"
            " capture >= 1,000 msg/s",
        )
    )
    best = min(rounds, key=lambda r: r["for_1m_s"])
    record(
        Figure(
            f"disposition, 1M records at the measured rate ({best['design']}, batch"
            f" {best['batch']:,})",
            best["for_1m_s"],
            "s",
            None,
            "",
            f"capture during: {rate(best['capture_during']['messages_per_s'])}",
            DISPOSE_TARGET_S,
        )
    )
    REPORTED["dispose_beside_capture"] = {"build": dispose_archive, "rounds": rounds}
    write_report()
