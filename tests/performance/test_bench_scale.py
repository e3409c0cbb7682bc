"""The archive's shape as it grows: bytes per message, index depth, and the sequencer's
per-batch statements at each size, beside the same figures at 10,000 messages (issue 20).

The archives are the cached ones of tests/performance/archive_scale.py (sealed by the real
sequencer; built on first use: ~1 min at 10k, ~1 h at 1M here, hours at 10M). For each size:

1. Per table: rows per message, heap, TOAST and index bytes per message (pg_relation_size,
   pg_total_relation_size, pg_indexes_size; rows counted), and the projection to 10M and 1B
   messages a year.
2. Per index: bytes per message and, for btrees, depth (pageinspect's bt_metap, in a
   transaction rolled back, so the cached archive gains no extension).
3. One sequencer batch as capture seals it (100 fresh deliveries of 20 messages from known
   clients: messaging.sequencer.process_batch, the real code), in a transaction rolled back,
   every ORM statement timed (the ledger's COPY is not an ORM statement: it is in "the rest");
   the median of BENCH_SCALE_BATCHES (3) batches; the plans of its SELECTs at the largest size.
4. What grows linearly whatever the indexes (the partitioning question): a full read of each
   large table (what VACUUM's freeze pass and the chain check read), building one btree on
   messages and one on the ledger (rolled back), and a fixed-size disposition read (the oldest
   10,000 due retention records).
5. What the running system reads about itself whatever the traffic: the health figures the home
   page and /api/v1/health/ show (messaging.health.ingestion_health) and the every-minute
   backlog alarm (check_backlog), each statement timed, median of 3.

Environment: BENCH_SCALE (unset: 10k and 1M; "10M": 10k, 1M and 10M), BENCH_SCALE_SIZES
(a comma list, overrides both), BENCH_SCALE_BATCHES (3). Figures go to var/bench/scale.json
(docs/SCALE.md quotes them).
"""

import contextlib
import json
import os
import re
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connection, transaction

from tests.performance.archive_scale import (
    ROOT,
    SCRATCH,
    ScaleArchive,
    open_archive,
    scratch_copy,
    size_of,
)
from tests.performance.conftest import Figure, record, say, seconds, table

SCALE = os.environ.get("BENCH_SCALE", "")
DEFAULT_SIZES = "10k,1M,10M" if SCALE.upper() == "10M" else "10k,1M"
SIZES = [size_of(s) for s in os.environ.get("BENCH_SCALE_SIZES", DEFAULT_SIZES).split(",")]
BATCHES = int(os.environ.get("BENCH_SCALE_BATCHES", "3"))
REPORT = ROOT / "var" / "bench" / "scale.json"
TABLES = (
    "messaging_message",
    "messaging_statusevent",
    "archive_ledgerentry",
    "archive_content",
    "archive_merklenode",
    "retention_record",
    "messaging_delivery",
    "messaging_deliveryseal",
    "messaging_conversationsummary",
)
BATCH_DELIVERIES, PER_DELIVERY = 100, 20  # as capture: 20 messages per webhook POST
YEARLY = (10_000_000, 1_000_000_000)
PLAN_WIDTH = 160
COPY_UP_TO = 1_000_000


@dataclass
class Shape:
    label: str
    messages: int
    database_bytes: int = 0
    tables: dict[str, dict[str, float]] = field(default_factory=dict)
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_s: float = 0.0
    statements: dict[str, float] = field(default_factory=dict)
    plans: list[str] = field(default_factory=list)
    linear: dict[str, float] = field(default_factory=dict)
    kinds: dict[str, dict[str, int]] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    status: dict[str, float] = field(default_factory=dict)


SHAPES: list[Shape] = []


# --------------------------------------------------------------------------- sizes


def table_sizes(archive: ScaleArchive, shape: Shape) -> None:
    with archive.connect() as conn:
        shape.database_bytes = conn.execute(
            "SELECT pg_database_size(current_database())"
        ).fetchone()[0]
        for name in TABLES:
            heap, total, indexes = conn.execute(
                "SELECT pg_relation_size(oid), pg_total_relation_size(oid),"
                " pg_indexes_size(oid) FROM pg_class WHERE oid = %s::regclass",
                [name],
            ).fetchone()
            rows = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            shape.tables[name] = {
                "rows": max(rows, 0),
                "heap": heap,
                "toast": total - heap - indexes,
                "indexes": indexes,
                "total": total,
            }
        conn.execute("BEGIN")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        found = conn.execute(
            "SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text, am.amname,"
            " pg_relation_size(i.indexrelid) FROM pg_index i JOIN pg_class c ON"
            " c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam"
            " WHERE i.indrelid::regclass::text = ANY(%s)",
            [list(TABLES)],
        ).fetchall()
        for index, owner, method, size in found:
            depth = None
            if method == "btree":
                depth = conn.execute("SELECT level + 1 FROM bt_metap(%s)", [index]).fetchone()[0]
            shape.indexes[index] = {"table": owner, "method": method, "bytes": size, "depth": depth}
        conn.execute("ROLLBACK")


def entry_kinds(archive: ScaleArchive, shape: Shape) -> None:
    """Bytes per ledger entry by kind, with its contents: what one more status (1.35 a message
    in real traffic, 0.07 in this archive) or delivery costs, whatever the generator's mix."""
    with archive.connect() as conn:
        found = conn.execute(
            "SELECT e.kind, count(*), sum(pg_column_size(e.*)), coalesce(sum(c.n), 0),"
            " coalesce(sum(c.bytes), 0) FROM archive_ledgerentry e LEFT JOIN"
            " (SELECT seq, count(*) AS n, sum(pg_column_size(c.*)) AS bytes"
            "  FROM archive_content c GROUP BY seq) c USING (seq) GROUP BY e.kind"
        ).fetchall()
    shape.kinds = {
        kind: {"entries": n, "entry_bytes": int(eb), "contents": int(cn), "content_bytes": int(cb)}
        for kind, n, eb, cn, cb in found
    }


# --------------------------------------------------------------------------- one batch


class Rollback(Exception):
    pass


def fresh_bodies(seed: int) -> list[tuple[bytes, int]]:
    """Deliveries of new messages (unseen wamids) from the archive's own clients."""
    from tests.performance.bench_review import Archive

    source = Archive(BATCH_DELIVERIES * PER_DELIVERY, big=0, seed=seed)
    out = []
    for body, received in source.deliveries(PER_DELIVERY):
        out.append((body.replace(b"wamid.HBgL", f"wamid.S{seed:03d}".encode()), received))
    return out[:BATCH_DELIVERIES]


def normalized(sql: str) -> str:
    key = re.sub(r"%s(, %s)+", "%s, ...", " ".join(sql.split()))
    key = re.sub(r"\(%s, \.\.\.\)(, \(%s, \.\.\.\))+", "(%s, ...), ...", key)
    return key[:110]


def one_batch(seed: int, explain: bool) -> tuple[float, dict[str, float], list[str]]:
    """process_batch() over fresh deliveries, rolled back; its time and its statements'."""
    from messaging.sequencer import process_batch
    from tests.performance.conftest import store_deliveries

    plans: list[str] = []
    spent = 0.0
    try:
        with transaction.atomic():
            store_deliveries(fresh_bodies(seed))
            t0 = time.perf_counter()
            with timed_statements() as seen:
                sealed = process_batch(BATCH_DELIVERIES)
            spent = time.perf_counter() - t0
            assert sealed == BATCH_DELIVERIES
            if explain:
                plans = explain_selects(seen)
            raise Rollback
    except Rollback:
        pass
    return spent, by_statement(seen), plans


@contextlib.contextmanager
def timed_statements() -> Iterator[list[tuple[str, Any, float]]]:
    """Every statement the ORM sends inside the block: its SQL, parameters and seconds."""
    seen: list[tuple[str, Any, float]] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            seen.append((sql, params, time.perf_counter() - t0))

    with connection.execute_wrapper(timed):
        yield seen


def by_statement(seen: list[tuple[str, Any, float]]) -> dict[str, float]:
    """Seconds per statement (normalized), savepoints left out."""
    spent: dict[str, float] = {}
    for sql, _, took in seen:
        if sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT")):
            continue
        key = normalized(sql)
        spent[key] = spent.get(key, 0.0) + took
    return spent


def median_by_key(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each key's median over the runs (0 in a run that lacks it)."""
    keys = {k for r in runs for k in r}
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in keys}


def explain_selects(seen: list[tuple[str, Any, float]]) -> list[str]:
    plans = []
    with connection.cursor() as cursor:
        for sql, params, took in seen:
            if not sql.lstrip().upper().startswith("SELECT") or "pg_advisory" in sql:
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
            lines = [row[0][:PLAN_WIDTH] for row in cursor.fetchall()]  # arrays of 2,000 keys
            plans.append(f"-- {normalized(sql)} ({seconds(took)})\n" + "\n".join(lines))
    return plans


def batches(shape: Shape, explain: bool) -> None:
    runs = [one_batch(seed, explain and n == 0) for n, seed in enumerate(range(101, 101 + BATCHES))]
    shape.batch_s = statistics.median(r[0] for r in runs)
    shape.statements = median_by_key([r[1] for r in runs])
    shape.plans = runs[0][2]


# --------------------------------------------------------------------------- linear costs


def linear_costs(archive: ScaleArchive, shape: Shape) -> None:
    with archive.connect() as conn:
        # one backend reading every heap page, as VACUUM's freeze pass and a backup do (not an
        # index-only count); pages cached or not, as the machine has them
        for setting in ("max_parallel_workers_per_gather", "enable_indexonlyscan"):
            conn.execute(f"SET {setting} = 0")
        conn.execute("SET enable_bitmapscan = off")
        conn.execute("SET enable_indexscan = off")
        for name in (
            "messaging_message",
            "archive_ledgerentry",
            "archive_content",
            "retention_record",
        ):
            t0 = time.perf_counter()
            conn.execute(f"SELECT count(*) FROM {name}")
            shape.linear[f"read all of {name}"] = time.perf_counter() - t0
        for name, columns in (
            ("messaging_message", "channel_id, wamid"),
            ("archive_ledgerentry", "link"),
        ):
            conn.execute("BEGIN")
            t0 = time.perf_counter()
            conn.execute(f"CREATE INDEX bench_scale_probe ON {name} ({columns})")
            shape.linear[f"build a btree on {name} ({columns})"] = time.perf_counter() - t0
            conn.execute("ROLLBACK")
        conn.execute("RESET ALL")  # the disposition read uses its index, as in production
        t0 = time.perf_counter()
        conn.execute(
            "SELECT seq FROM retention_record WHERE disposed_at IS NULL"
            " ORDER BY retain_until LIMIT 10000"
        ).fetchall()
        shape.linear["the oldest 10,000 due retention records"] = time.perf_counter() - t0


# --------------------------------------------------------------------------- status pages


def status_pages(shape: Shape) -> None:
    """ingestion_health() and check_backlog() as the home page, the monitoring API and the
    every-minute alarm call them (read-only), each statement timed: median of 3."""
    from messaging.health import check_backlog, ingestion_health

    runs: list[dict[str, float]] = []
    for _ in range(3):
        with timed_statements() as seen:
            t0 = time.perf_counter()
            ingestion_health()
            health = time.perf_counter() - t0
            t0 = time.perf_counter()
            check_backlog()
            backlog = time.perf_counter() - t0
        run = by_statement(seen)
        run["ingestion_health(), whole"] = health
        run["check_backlog(), whole"] = backlog
        runs.append(run)
    shape.status = median_by_key(runs)


# --------------------------------------------------------------------------- the benchmark


@contextlib.contextmanager
def on_a_copy(archive: ScaleArchive) -> Iterator[ScaleArchive]:
    """Where the rolled-back batches run: a rolled-back insert still leaves its index entries
    behind, so up to 1M they run on a copy (1 s at 10k, ~40 s at 1M) and the cached archive
    keeps the sizes it was built with; at 10M, where a copy costs 45 GB, on the archive itself
    (6,000 messages' worth of dead index entries a run, 0.06 %), vacuumed afterwards."""
    if archive.messages > COPY_UP_TO:
        try:
            yield archive
        finally:
            with archive.connect() as conn:
                conn.execute("VACUUM")
        return
    with scratch_copy(archive.cluster) as spent:
        say(f"   the batches run on a copy of the archive (made in {seconds(spent)})")
        yield ScaleArchive(archive.label, archive.messages, archive.cluster, SCRATCH)


@pytest.fixture(scope="module")
def shapes(django_db_blocker: Any) -> Iterator[list[Shape]]:
    largest = max(n for _, n in SIZES)
    with django_db_blocker.unblock():
        for label, messages in SIZES:
            say(f"== scale archive {label}: opening (built and cached by archive_scale.py)")
            t0 = time.perf_counter()
            with open_archive(label) as archive:
                shape = Shape(label, messages, build=archive.build)
                say(f"   opened in {seconds(time.perf_counter() - t0)}")
                table_sizes(archive, shape)
                entry_kinds(archive, shape)
                linear_costs(archive, shape)
                with archive.django():
                    status_pages(shape)
                with on_a_copy(archive) as scratch, scratch.django():
                    batches(shape, explain=messages == largest)
            SHAPES.append(shape)
    yield SHAPES
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps([s.__dict__ for s in SHAPES], indent=1, default=str) + "\n")
    say(f"   figures written to {REPORT.relative_to(ROOT)}")


def per_message(value: float, shape: Shape) -> str:
    return f"{value / shape.messages:,.0f}"


def test_bytes_per_message(shapes: list[Shape]) -> None:
    top = shapes[-1]
    for shape in shapes:
        assert shape.tables["messaging_message"]["rows"] >= shape.messages * 0.95
    rows = []
    for name in TABLES:
        t = top.tables[name]
        rows.append(
            [
                name,
                f"{t['rows'] / top.messages:.2f}",
                per_message(t["heap"], top),
                per_message(t["toast"], top),
                per_message(t["indexes"], top),
                *[per_message(s.tables[name]["total"], s) for s in shapes],
                *[f"{t['total'] / top.messages * y / 1e9:,.1f}" for y in YEARLY],
            ]
        )
    labels = [s.label for s in shapes]
    say(
        table(
            [
                f"table (at {top.label})",
                "rows/msg",
                "heap B/msg",
                "TOAST B/msg",
                "index B/msg",
                *[f"total B/msg {x}" for x in labels],
                "GB/yr at 10M/yr",
                "GB/yr at 1B/yr",
            ],
            rows,
            title="== bytes per message, per table",
        )
    )
    for shape in shapes:
        say(
            f"   {shape.label}: database {shape.database_bytes / 1e9:,.2f} GB ="
            f" {shape.database_bytes / shape.messages:,.0f} B/message"
        )


def test_entry_kinds(shapes: list[Shape]) -> None:
    top = shapes[-1]
    rows = [
        [
            kind,
            f"{k['entries'] / top.messages:.3f}",
            f"{k['entry_bytes'] / k['entries']:,.0f}",
            f"{k['contents'] / k['entries']:.1f}",
            f"{k['content_bytes'] / k['entries']:,.0f}",
        ]
        for kind, k in sorted(top.kinds.items(), key=lambda kv: -kv[1]["entries"])
    ]
    say(
        table(
            ["ledger entry kind", "per message", "entry B", "contents", "contents B"],
            rows,
            title=f"== ledger entries by kind at {top.label} (row bytes, before indexes and pages)",
        )
    )
    assert sum(k["entries"] for k in top.kinds.values()) >= top.messages


def test_indexes(shapes: list[Shape]) -> None:
    top = shapes[-1]
    rows = []
    for index, info in sorted(top.indexes.items(), key=lambda kv: -kv[1]["bytes"]):
        present = [s for s in shapes if index in s.indexes]
        rows.append(
            [
                index[:48],
                info["method"],
                *[
                    per_message(s.indexes[index]["bytes"], s) if s in present else "-"
                    for s in shapes
                ],
                *[str(s.indexes[index]["depth"] or "-") if s in present else "-" for s in shapes],
            ]
        )
    labels = [s.label for s in shapes]
    say(
        table(
            ["index", "method", *[f"B/msg {x}" for x in labels], *[f"depth {x}" for x in labels]],
            rows,
            title="== indexes: bytes per message and btree depth (levels incl. the leaves)",
        )
    )


def test_sequencer_batch(shapes: list[Shape]) -> None:
    base, top = shapes[0], shapes[-1]
    keys = sorted(top.statements, key=lambda k: -top.statements[k])
    rows = [
        [
            key,
            *[seconds(s.statements.get(key, 0.0)) for s in shapes],
            f"{top.statements[key] / base.statements[key]:.2f}"
            if base.statements.get(key)
            else "-",
        ]
        for key in keys
    ]
    rows.append(
        [
            "the rest: Python, the ledger's COPY",
            *[seconds(s.batch_s - sum(s.statements.values())) for s in shapes],
            "-",
        ]
    )
    rows.append(
        [
            "process_batch(), whole",
            *[seconds(s.batch_s) for s in shapes],
            f"{top.batch_s / base.batch_s:.2f}",
        ]
    )
    labels = [s.label for s in shapes]
    say(
        table(
            ["statement (ORM)", *labels, f"{top.label}/{base.label}"],
            rows,
            title=f"== one sequencer batch ({BATCH_DELIVERIES} deliveries of {PER_DELIVERY} new"
            f" messages), median of {BATCHES}, rolled back",
        )
    )
    say(f"== plans of the batch's SELECTs at {top.label}")
    for plan in top.plans:
        say(plan)
    rate = BATCH_DELIVERIES * PER_DELIVERY
    record(
        Figure(
            f"one sequencer batch at {top.label}",
            rate / top.batch_s,
            "messages/s",
            ceiling=rate / base.batch_s,
            ceiling_label=f"same batch at {base.label}",
        )
    )


def test_linear_costs(shapes: list[Shape]) -> None:
    base, top = shapes[0], shapes[-1]
    rows = [
        [
            what,
            *[seconds(s.linear[what]) for s in shapes],
            f"{top.linear[what] / base.linear[what]:.1f}",
            f"{top.linear[what] / top.messages * 1e9:,.0f} s",
        ]
        for what in top.linear
    ]
    for s in shapes:
        if "verify_s" in s.build:
            say(f"   verify_archive after the {s.label} build: {seconds(s.build['verify_s'])}")
    labels = [s.label for s in shapes]
    say(
        table(
            ["operation", *labels, f"{top.label}/{base.label}", "linear to 1B messages"],
            rows,
            title="== what grows with the archive (the partitioning question)",
        )
    )


def test_status_pages(shapes: list[Shape]) -> None:
    base, top = shapes[0], shapes[-1]
    keys = sorted(top.status, key=lambda k: (not k.endswith("whole"), -top.status[k]))
    rows = [
        [
            key[:PLAN_WIDTH],
            *[seconds(s.status.get(key, 0.0)) for s in shapes],
            f"{top.status[key] / base.status[key]:.1f}" if base.status.get(key) else "-",
        ]
        for key in keys
    ]
    labels = [s.label for s in shapes]
    say(
        table(
            ["statement", *labels, f"{top.label}/{base.label}"],
            rows,
            title="== what the running system reads about itself: the health figures (home"
            " page, /api/v1/health/) and the every-minute backlog alarm, median of 3",
        )
    )
    for name in ("ingestion_health(), whole", "check_backlog(), whole"):
        record(
            Figure(
                f"{name.split(',')[0]} at {top.label}",
                top.status[name],
                "s",
                ceiling=base.status[name],
                ceiling_label=f"at {base.label}",
            )
        )
