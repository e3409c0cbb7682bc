"""Ledger benchmarks: append, verify and checkpoint, each beside its ceiling in the same run.

`make bench` runs these with -s; every benchmark prints a detail table and adds its headline
figures to the summary printed at the end (tests/performance/conftest.py). Nothing here asserts
on speed; correctness (an intact chain, contiguous seq) is asserted where it is cheap.

Ceilings:
- append: the same rows (seq, kind, envelope, leaf_hash, link, sealed_at) read back from the
  ledger, written by the same runtime-role connection, in the same batch sizes and transactions,
  into a plain table with no triggers, constraints or indexes: by INSERT and by COPY (append()
  itself uses COPY). The ratio is against the faster of the two. "+content" rows also write the
  content rows, which append() writes as well (archive_content), for information.
- verify: streaming the rows verify_ledger reads (named cursor, binary, fetchmany 10,000),
  doing nothing with them.
- checkpoint: computing the root from the frontier and signing the note, with no database.

Set BENCH_RUNS (default 3) for the repetitions of the 1M-entry figures, and BENCH_PROFILE=1 to
print a cProfile of verify_ledger on the 1M-entry ledger.
"""

import contextlib
import cProfile
import importlib
import io
import os
import pstats
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pgtrigger
import pytest
from django.apps import apps
from django.db import connection, connections, transaction
from psycopg import sql

from archive import ledger, signing
from archive.checkpoints import checkpoint_body, create_checkpoint, key_name, signing_key
from archive.ledger import Fact, rfc3339
from archive.merkle import CompactRange, leaf_hash
from archive.models import AppendOnlyModel, Checkpoint, append_only_triggers
from archive.verify import verify_ledger
from tests.conftest import superuser_connect, wipe_archive
from tests.performance.conftest import Figure, median_of, rate, record, say, seconds, table

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
PROFILE = os.environ.get("BENCH_PROFILE", "") not in ("", "0")

MESSAGE_BODY = 600  # bytes of private content on the append benchmarks' messages
BUILD_BODY = 100  # bytes of content on every entry of the 1M-entry ledger
MILLION = 1_000_000
BUILD_BATCH = 1_000
CHECKPOINT_EVERY = 100_000
FETCH = 10_000
WORKERS = 8

EntryRow = tuple[int, str, bytes, bytes, bytes, datetime]
ContentRow = tuple[int, str, bytes, bytes]

ENTRY_COLUMNS = "seq, kind, envelope, leaf_hash, link, sealed_at"
CONTENT_COLUMNS = "seq, name, salt, content"
ENTRIES_QUERY = f"SELECT {ENTRY_COLUMNS} FROM archive_ledgerentry ORDER BY seq"
CONTENTS_QUERY = f"SELECT {CONTENT_COLUMNS} FROM archive_content ORDER BY seq, name"


def message(n: int, body: int = MESSAGE_BODY, appender: int | None = None) -> Fact:
    """A WhatsApp-message-like fact: eight public scalar fields and one private body."""
    fields: dict[str, str | int | bool | None] = {
        "provider": "whatsapp",
        "message_id": f"wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhggQ0Y{n:012d}",
        "conversation_id": f"conv-{n % 997:05d}",
        "direction": "inbound" if n % 2 else "outbound",
        "sender": f"+4477009{n % 100_000:05d}",
        "recipient": "+447700900001",
        "sent_at": 1_732_500_000 + n,
        "has_media": n % 50 == 0,
    }
    if appender is not None:
        fields["appender"] = appender
    return Fact("message.received", fields, {"body": os.urandom(body // 2).hex().encode()})


def ledger_size() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT size FROM archive_chainhead WHERE id = 1")
        return int(cursor.fetchone()[0])


def written_since(start: int) -> tuple[list[EntryRow], list[ContentRow]]:
    """The rows append() wrote from `start` on, to write again into the scratch tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {ENTRY_COLUMNS} FROM archive_ledgerentry WHERE seq >= %s ORDER BY seq",
            [start],
        )
        entries = [(s, k, bytes(e), bytes(h), bytes(ln), t) for s, k, e, h, ln, t in cursor]
        cursor.execute(
            f"SELECT {CONTENT_COLUMNS} FROM archive_content WHERE seq >= %s ORDER BY seq, name",
            [start],
        )
        contents = [(s, n, bytes(salt), bytes(c)) for s, n, salt, c in cursor]
    assert len(contents) == len(entries)  # one body per message
    return entries, contents


# --------------------------------------------------------------------------- raw writes

RAW_METHODS = ("INSERT", "COPY")
RAW_VARIANTS = [(m, False) for m in RAW_METHODS] + [(m, True) for m in RAW_METHODS]


def variant_name(method: str, with_content: bool) -> str:
    return f"raw {method}" + (" +content" if with_content else "")


def raw_write(
    raw_cursor: Any, entries: Sequence[EntryRow], contents: Sequence[ContentRow], method: str
) -> None:
    """Write rows into the scratch tables the plain way (no hashing, no checks)."""
    targets = [("bench_raw_entry", ENTRY_COLUMNS, entries, 6)]
    if contents:
        targets.append(("bench_raw_content", CONTENT_COLUMNS, contents, 4))
    for name, columns, rows, width in targets:
        if method == "COPY":
            with raw_cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            query = f"INSERT INTO {name} ({columns}) VALUES ({', '.join(['%s'] * width)})"
            if len(rows) == 1:
                raw_cursor.execute(query, rows[0])
            else:
                raw_cursor.executemany(query, rows)


def raw_batches(
    entries: Sequence[EntryRow],
    contents: Sequence[ContentRow],
    batch: int,
    method: str,
    with_content: bool,
) -> float:
    """Seconds to write `entries` in transactions of `batch` rows, as append() would."""
    started = time.perf_counter()
    for i in range(0, len(entries), batch):
        with transaction.atomic(), connection.cursor() as cursor:
            raw_write(
                cursor.cursor,
                entries[i : i + batch],
                contents[i : i + batch] if with_content else (),
                method,
            )
    return time.perf_counter() - started


def concurrently(workers: int, work: Callable[[int], None]) -> float:
    """Wall seconds for `workers` threads, each with its own connection, to run work(i)."""
    barrier = threading.Barrier(workers + 1)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            connection.ensure_connection()
            barrier.wait(timeout=120)
            work(i)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=120)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


# --------------------------------------------------------------------------- append


def append_benchmark(
    name: str,
    *,
    batch: int,
    total: int,
    rounds: int,
    workers: int,
    scratch: Callable[[], None],
    settings_line: str,
    target: float | None,
    reference: str,
) -> None:
    """Append `total` entries in `rounds`, each round followed by the raw writes of its rows."""
    per_round = total // rounds
    per_worker = per_round // workers
    assert per_worker % batch == 0 and per_worker * workers == per_round
    appended = 0.0
    raw = dict.fromkeys(RAW_VARIANTS, 0.0)
    for _ in range(rounds):
        start = ledger_size()
        if workers == 1:
            facts = [message(start + i) for i in range(per_round)]
            began = time.perf_counter()
            for i in range(0, per_round, batch):
                ledger.append(facts[i : i + batch])
            appended += time.perf_counter() - began
        else:
            shares = [
                [message(start + w * per_worker + i, appender=w) for i in range(per_worker)]
                for w in range(workers)
            ]

            def append_share(w: int, shares: list[list[Fact]] = shares) -> None:
                for i in range(0, per_worker, batch):
                    ledger.append(shares[w][i : i + batch])

            appended += concurrently(workers, append_share)
        entries, contents = written_since(start)
        assert len(entries) == per_round
        for method, with_content in RAW_VARIANTS:
            scratch()
            if workers == 1:
                raw[method, with_content] += raw_batches(
                    entries, contents, batch, method, with_content
                )
            else:

                def write_share(
                    w: int,
                    method: str = method,
                    with_content: bool = with_content,
                    entries: list[EntryRow] = entries,
                    contents: list[ContentRow] = contents,
                ) -> None:
                    raw_batches(
                        entries[w::workers], contents[w::workers], batch, method, with_content
                    )

                raw[method, with_content] += concurrently(workers, write_share)
    scratch()

    ours = total / appended
    rates = {variant: total / spent for variant, spent in raw.items()}
    best = max(RAW_METHODS, key=lambda m: rates[m, False])
    rows = [[f"ledger.append (batch {batch})", rate(ours), seconds(appended), "1.00"]]
    rows += [
        [variant_name(*v), rate(r), seconds(raw[v]), f"{ours / r:.2f}"] for v, r in rates.items()
    ]
    say()
    say(
        table(
            ["writer", "entries/s", "time", "append/this"],
            rows,
            title=f"== {name}: {total:,} entries, {workers} appender(s), batch {batch}, "
            f"{rounds} interleaved rounds, ~{MESSAGE_BODY} B body ({settings_line})",
        )
    )
    record(Figure(name, ours, "entries/s", rates[best, False], f"raw {best}", reference, target))


def check_intact(total: int, workers: int) -> None:
    report = verify_ledger()
    assert report.intact, report.problems[:5]
    assert report.entries == total and report.contents == total
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), min(seq), max(seq), count(DISTINCT link) FROM archive_ledgerentry"
        )
        count, first, last, links = cursor.fetchone()
        assert (count, first, last, links) == (total, 0, total - 1, total)  # contiguous, no fork
        if workers > 1:
            cursor.execute(
                "SELECT convert_from(envelope, 'UTF8')::jsonb ->> 'appender', count(*)"
                " FROM archive_ledgerentry GROUP BY 1 ORDER BY 1"
            )
            per_appender = dict(cursor.fetchall())
            assert per_appender == {str(w): total // workers for w in range(workers)}
    say(
        f"   verified: intact, seq 0..{total - 1} contiguous, {total:,} distinct links"
        + (
            f", {total // workers:,} entries from each of {workers} appenders"
            if workers > 1
            else ""
        )
        + f" (verify took {seconds(report.seconds)})"
    )


@pytest.mark.parametrize(
    ("name", "batch", "total", "rounds", "workers", "target", "reference"),
    [
        pytest.param(
            "append, batch 100",
            100,
            20_000,
            4,
            1,
            10_000.0,
            "hash chain 100/txn: 19,300/s",
            id="batch100",
        ),
        pytest.param(
            "append, batch 1",
            1,
            3_000,
            3,
            1,
            None,
            "hash chain FOR UPDATE 1 client: 1,640/s",
            id="batch1",
        ),
        pytest.param(
            "append, 8 appenders, batch 1",
            1,
            3_200,
            2,
            WORKERS,
            None,
            "hash chain 8 clients: 1,360/s",
            id="concurrent8-batch1",
        ),
        pytest.param(
            "append, 8 appenders, batch 100",
            100,
            16_000,
            2,
            WORKERS,
            None,
            "-",
            id="concurrent8-batch100",
        ),
    ],
)
def test_append(
    empty_ledger: None,
    scratch: Callable[[], None],
    server_settings: str,
    name: str,
    batch: int,
    total: int,
    rounds: int,
    workers: int,
    target: float | None,
    reference: str,
) -> None:
    append_benchmark(
        name,
        batch=batch,
        total=total,
        rounds=rounds,
        workers=workers,
        scratch=scratch,
        settings_line=server_settings,
        target=target,
        reference=reference,
    )
    check_intact(total, workers)
    if PROFILE and workers == 1:
        size = ledger_size()
        facts = [message(n) for n in range(size, size + 20 * batch)]

        def run() -> None:
            for i in range(0, len(facts), batch):
                ledger.append(facts[i : i + batch])

        profile(f"ledger.append of {len(facts):,} entries in batches of {batch}", run)


# --------------------------------------------------------------------------- the 1M ledger


@pytest.fixture(scope="module")
def million(
    django_db_setup: None, django_db_blocker: Any, scratch: Callable[[], None]
) -> Iterator[int]:
    """1,000,000 committed entries (100-byte body each, a checkpoint every 100,000), built
    once for the module with append() in batches of 1,000, and wiped at the end."""
    with django_db_blocker.unblock():
        wipe_archive()
        try:
            build_million(scratch)
            yield MILLION
        finally:
            connections.close_all()
            wipe_archive()


def build_million(scratch: Callable[[], None]) -> None:
    rows, appending, checkpointing = [], 0.0, 0.0
    began = time.perf_counter()
    for segment in range(MILLION // CHECKPOINT_EVERY):
        spent = 0.0
        for start in range(
            segment * CHECKPOINT_EVERY, (segment + 1) * CHECKPOINT_EVERY, BUILD_BATCH
        ):
            facts = [message(n, BUILD_BODY) for n in range(start, start + BUILD_BATCH)]
            t0 = time.perf_counter()
            ledger.append(facts)
            spent += time.perf_counter() - t0
        t0 = time.perf_counter()
        assert create_checkpoint() is not None
        signed = time.perf_counter() - t0
        appending, checkpointing = appending + spent, checkpointing + signed
        size = (segment + 1) * CHECKPOINT_EVERY
        rows.append([f"{size:,}", rate(CHECKPOINT_EVERY / spent), seconds(signed)])
    wall = time.perf_counter() - began
    assert ledger_size() == MILLION

    # The ceiling: the last 100,000 rows written again, plainly, in the same batches.
    entries, contents = written_since(MILLION - CHECKPOINT_EVERY)
    raw = {}
    for method in RAW_METHODS:
        scratch()
        raw[method] = CHECKPOINT_EVERY / raw_batches(entries, contents, BUILD_BATCH, method, False)
    scratch()
    del entries, contents
    best = max(raw, key=raw.__getitem__)

    t0 = time.perf_counter()
    with superuser_connect() as conn:  # as autovacuum would, before anyone reads the ledger
        conn.execute("VACUUM (ANALYZE) archive_ledgerentry, archive_content")
        sizes = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('archive_ledgerentry')),"
            " pg_size_pretty(pg_total_relation_size('archive_content'))"
        ).fetchone()
    vacuumed = time.perf_counter() - t0

    ours = MILLION / appending
    say()
    say(
        table(
            ["size", "append entries/s", "checkpoint"],
            rows,
            title=f"== build: {MILLION:,} entries, append batch {BUILD_BATCH:,}, "
            f"{BUILD_BODY} B body, checkpoint every {CHECKPOINT_EVERY:,}",
        )
    )
    say(
        f"   append {rate(ours)} overall ({seconds(appending)} appending, "
        f"{seconds(checkpointing)} in 10 checkpoints, {seconds(wall)} wall with fact building)"
    )
    say(
        f"   ceiling on the last 100,000 rows, batch {BUILD_BATCH:,}: "
        + ", ".join(f"raw {m} {rate(r)}" for m, r in raw.items())
    )
    say(f"   VACUUM ANALYZE {seconds(vacuumed)}; ledger {sizes[0]}, contents {sizes[1]}")
    record(
        Figure(
            f"build 1M, append batch {BUILD_BATCH:,}",
            ours,
            "entries/s",
            raw[best],
            f"raw {best}",
            "COPY 1 client: 26,100/s",
        )
    )


def stream(queries: Sequence[str]) -> float:
    """Seconds to stream the rows of `queries` as verify_ledger does, doing nothing with them."""
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for i, query in enumerate(queries):
            with connection.connection.cursor(name=f"bench_stream_{i}", binary=True) as named:
                named.itersize = FETCH
                named.execute(query)
                while rows := named.fetchmany(FETCH):
                    for _row in rows:
                        pass
    return time.perf_counter() - started


def verified(contents: bool) -> float:
    report = verify_ledger(contents=contents)
    assert report.intact, report.problems[:5]
    assert report.entries == MILLION and report.checkpoints == MILLION // CHECKPOINT_EVERY
    assert report.contents == (MILLION if contents else 0)
    return report.seconds


def test_verify(million: int) -> None:
    """Streaming, then verify_ledger, with and without contents, interleaved run by run."""
    measures: dict[str, Callable[[], float]] = {
        "stream entries": lambda: stream([ENTRIES_QUERY]),
        "verify_ledger(contents=False)": lambda: verified(False),
        "stream entries + contents": lambda: stream([ENTRIES_QUERY, CONTENTS_QUERY]),
        "verify_ledger(contents=True)": lambda: verified(True),
    }
    times: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(RUNS):
        for name, measure in measures.items():
            times[name].append(measure())
    median = {name: statistics.median(values) for name, values in times.items()}
    rows = [
        [
            name,
            rate(million / median[name]),
            seconds(median[name]),
            ", ".join(seconds(v) for v in values),
        ]
        for name, values in times.items()
    ]
    say()
    say(
        table(
            ["what", "entries/s (median)", "median", "runs"],
            rows,
            title=f"== verify: {million:,} entries, {RUNS} interleaved runs",
        )
    )
    for contents, stream_name in ((False, "stream entries"), (True, "stream entries + contents")):
        name = f"verify_ledger(contents={contents})"
        record(
            Figure(
                f"verify 1M, contents={contents}",
                million / median[name],
                "entries/s",
                million / median[stream_name],
                stream_name,
                "stream+chain check: 82,000/s" if not contents else "-",
                100_000.0 if not contents else None,
            )
        )
    record(
        Figure(
            "stream 1M entries (ceiling)",
            million / median["stream entries"],
            "entries/s",
            reference="binary stream: 150,000/s",
        )
    )
    if PROFILE:
        for contents in (False, True):
            profile_verify(contents)


def profile(title: str, call: Callable[[], object]) -> None:
    """Print the functions where `call` spends its own time (cProfile; BENCH_PROFILE=1)."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(call)
    spent = time.perf_counter() - started
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    say()
    say(f"== cProfile of {title} ({seconds(spent)} under the profiler), by own time")
    say(out.getvalue().split("\n", 4)[-1].rstrip())


def profile_verify(contents: bool) -> None:
    def run() -> None:
        assert verify_ledger(contents=contents).intact

    profile(f"verify_ledger(contents={contents}) on the 1M-entry ledger", run)


def test_checkpoint(million: int) -> None:
    """create_checkpoint() on the 1M ledger after 1,000 more entries, and after 1 more."""

    def sign_only() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT size, frontier FROM archive_chainhead WHERE id = 1")
            size, frontier = cursor.fetchone()
        started = time.perf_counter()
        root = CompactRange.from_bytes(size, bytes(frontier)).root()
        body = checkpoint_body(key_name(), size, root, rfc3339(datetime.now().astimezone()))
        signing.sign_note(body, key_name(), signing_key())
        return time.perf_counter() - started

    appended: dict[int, list[float]] = {1_000: [], 1: []}

    def after(batch: int) -> float:
        size = ledger_size()
        facts = [message(n, BUILD_BODY) for n in range(size, size + batch)]
        t0 = time.perf_counter()
        ledger.append(facts)
        appended[batch].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        checkpoint = create_checkpoint()
        spent = time.perf_counter() - t0
        assert checkpoint is not None and checkpoint.tree_size == size + batch
        return spent

    floor, floors = median_of(RUNS, sign_only)
    incremental, incrementals = median_of(RUNS, lambda: after(1_000))
    single, singles = median_of(RUNS, lambda: after(1))
    rows = [
        [
            "create_checkpoint after 1,000 more",
            seconds(incremental),
            ", ".join(seconds(v) for v in incrementals),
            rate(1_000 / statistics.median(appended[1_000])),
        ],
        [
            "create_checkpoint after 1 more",
            seconds(single),
            ", ".join(seconds(v) for v in singles),
            rate(1 / statistics.median(appended[1])),
        ],
        [
            "root + sign, no database (ceiling)",
            seconds(floor),
            ", ".join(seconds(v) for v in floors),
            "-",
        ],
    ]
    say()
    say(
        table(
            ["what", "median", "runs", "append before it"],
            rows,
            title=f"== checkpoint on {million:,}+ entries",
        )
    )
    record(
        Figure("checkpoint after 1,000 more", incremental, "s", floor, "root+sign only", target=2.0)
    )
    record(Figure("checkpoint after 1 more", single, "s", floor, "root+sign only"))

    # Still intact, checkpoints included (contents=False: the 1M figure is measured above).
    report = verify_ledger(contents=False)
    assert report.intact, report.problems[:5]
    assert report.checkpoints == Checkpoint.objects.count() == 10 + 2 * RUNS
    say(
        f"   verified: intact, {report.entries:,} entries, {report.checkpoints} checkpoints "
        f"({seconds(report.seconds)})"
    )


# --------------------------------------------------------------------------- row vs statement

# The entries a capture batch seals, each with the retention record that backs it, appended
# under the row triggers (archive 0002/0004, retention 0007) and under the statement triggers
# that replaced them (archive 0006, retention 0010), in alternating rounds of one run, beside
# the same rows COPYed into plain tables. BENCH_TRIGGER_ENTRIES per round and batch size.
# The designs (BENCH_TRIGGER_MODES, "row,statement"): "row", everything as before issue 20;
# "guards", the chain check and retention_record's guards per statement but the append-only
# tables' `append_only` trigger still per row (the tree before archive 0008, messaging 0015,
# retention 0011 and review 0006); "statement", everything as migrated now.
TRIGGER_ENTRIES = int(os.environ.get("BENCH_TRIGGER_ENTRIES", "20000"))
TRIGGER_BATCHES = (20, 1_000)
TRIGGER_ROUNDS = 2
TRIGGER_MODES = os.environ.get("BENCH_TRIGGER_MODES", "row,statement").split(",")
RECORD_COLUMNS = "seq, kind, channel_id, conversation_id, policy_id, sealed_at, retain_until"
RAW_RECORD = "bench_raw_record"
# mode -> (chain check and retention guards, append-only protection)
TRIGGER_DESIGNS = {
    "row": ("row", "row"),
    "guards": ("statement", "row"),
    "statement": ("statement", "statement"),
}


def append_only_sql(level: str) -> str:
    """Every append-only table's `append_only` trigger, per row (pgtrigger.Protect, as archive
    0001 and the other apps' first migrations installed it) or as archive/models.py has it now.
    Same name and pgid either way: pgtrigger's install SQL drops and recreates it."""
    if level == "row":
        trigger = pgtrigger.Protect(
            name="append_only", operation=pgtrigger.Update | pgtrigger.Delete
        )
    else:
        (trigger,) = [t for t in append_only_triggers() if t.name == "append_only"]
    return "".join(
        trigger.compile(model).install_sql
        for model in apps.get_models()
        if issubclass(model, AppendOnlyModel) and model._meta.managed
    )


def trigger_sql() -> dict[str, str]:
    chain = importlib.import_module("archive.migrations.0006_statement_triggers")
    guard = importlib.import_module("retention.migrations.0010_statement_triggers")
    return {
        "row": chain.ROW_CHAIN_CHECK + guard.ROW_GUARD,
        "statement": chain.CHAIN_CHECK + guard.GUARDS,
    }


def use_triggers(mode: str, current: list[str]) -> None:
    """Swap the triggers as the owner role (what the migrations and their reverses do)."""
    if current[0] != mode:
        (guards, append_only), (was_guards, was_append_only) = (
            TRIGGER_DESIGNS[mode],
            TRIGGER_DESIGNS[current[0]],
        )
        with connections["owner"].cursor() as cursor:
            if guards != was_guards:
                cursor.execute(trigger_sql()[guards])
            if append_only != was_append_only:
                cursor.execute(append_only_sql(append_only))
        connections["owner"].close()
        current[0] = mode


def captured(start: int, count: int) -> list[Fact]:
    return [
        Fact("message", dict(message(n).fields), {"text": b"x" * MESSAGE_BODY})
        for n in range(start, start + count)
    ]


def append_backed(facts: list[Fact], policy: tuple[int, int], with_records: bool) -> None:
    """append() and, in its transaction, the retention records of what it sealed (as
    retention.assign.write COPYs them)."""
    with transaction.atomic():
        entries = ledger.append(facts)
        if with_records:
            pk, days = policy
            with (
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY retention_record ({RECORD_COLUMNS}) FROM STDIN") as copy,
            ):
                for e in entries:
                    copy.write_row(
                        (
                            e.seq,
                            e.kind,
                            None,
                            None,
                            pk,
                            e.sealed_at,
                            e.sealed_at + timedelta(days=days),
                        )
                    )


def python_only(facts: list[Fact], batch: int) -> float:
    """append()'s own Python work on the same facts (salts, envelopes, hashes, frontier)."""
    started = time.perf_counter()
    frontier, link = CompactRange.from_bytes(0, b""), bytes(32)
    sealed_at = datetime.now(UTC)
    for i in range(0, len(facts), batch):
        for seq, fact in enumerate(facts[i : i + batch], start=i):
            commits, _ = ledger._commit_contents(fact)
            envelope = ledger.build_envelope(seq, fact, sealed_at, commits)
            leaf = leaf_hash(envelope)
            link = ledger.chain_link(link, leaf)
            frontier.append(leaf)
    return time.perf_counter() - started


def test_append_row_vs_statement_triggers(
    empty_ledger: None, scratch: Callable[[], None], server_settings: str
) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, days FROM retention_retentionpolicy WHERE is_default")
        policy = cursor.fetchone()
    runtime = sql.Identifier(connection.settings_dict["USER"])
    with superuser_connect() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {RAW_RECORD}")
        conn.execute(
            f"CREATE TABLE {RAW_RECORD} (seq bigint, kind text, channel_id bigint,"
            " conversation_id bigint, policy_id bigint, sealed_at timestamptz,"
            " retain_until timestamptz)"
        )
        conn.execute(sql.SQL(f"GRANT SELECT, INSERT ON {RAW_RECORD} TO {{}}").format(runtime))
    current = ["statement"]
    spent: dict[tuple[str, int, bool], float] = {}
    try:
        for batch in TRIGGER_BATCHES:
            for _ in range(TRIGGER_ROUNDS):
                for mode in TRIGGER_MODES:
                    use_triggers(mode, current)
                    for with_records in (False, True):
                        facts = captured(ledger_size(), TRIGGER_ENTRIES)
                        t0 = time.perf_counter()
                        for i in range(0, len(facts), batch):
                            append_backed(facts[i : i + batch], policy, with_records)
                        key = (mode, batch, with_records)
                        spent[key] = spent.get(key, 0.0) + time.perf_counter() - t0
            # the ceiling: the last round's rows (entries, contents, records) COPYed plainly
            start = ledger_size() - TRIGGER_ENTRIES
            entries, contents = written_since(start)
            records = [
                (e[0], e[1], None, None, policy[0], e[5], e[5] + timedelta(days=policy[1]))
                for e in entries
            ]
            scratch()
            t0 = time.perf_counter()
            for i in range(0, len(entries), batch):
                with transaction.atomic(), connection.cursor() as cursor:
                    raw_write(cursor.cursor, entries[i : i + batch], (), "COPY")
            spent["copy", batch, False] = (time.perf_counter() - t0) * TRIGGER_ROUNDS
            scratch()
            t0 = time.perf_counter()
            for i in range(0, len(entries), batch):
                with transaction.atomic(), connection.cursor() as cursor:
                    raw_write(
                        cursor.cursor, entries[i : i + batch], contents[i : i + batch], "COPY"
                    )
                    with cursor.cursor.copy(f"COPY {RAW_RECORD} FROM STDIN") as copy:
                        for row in records[i : i + batch]:
                            copy.write_row(row)
            spent["copy", batch, True] = (time.perf_counter() - t0) * TRIGGER_ROUNDS
            scratch()
            spent["python", batch, False] = (
                python_only(captured(0, TRIGGER_ENTRIES), batch) * TRIGGER_ROUNDS
            )
    finally:
        use_triggers("statement", current)
        with superuser_connect() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {RAW_RECORD}")
    total = TRIGGER_ENTRIES * TRIGGER_ROUNDS
    names = {
        "row": "append, row triggers (before issue 20)",
        "guards": "append, statement guards, row append_only",
        "statement": "append, statement triggers (as migrated)",
        "copy": "bare COPY (ceiling)",
        "python": "append's Python work alone",
    }
    rows = []
    for batch in TRIGGER_BATCHES:
        for what in (*TRIGGER_MODES, "copy", "python"):
            alone, backed = spent.get((what, batch, False)), spent.get((what, batch, True))
            rows.append(
                [
                    f"{names[what]}, batch {batch:,}",
                    rate(total / alone) if alone else "-",
                    rate(total / backed) if backed else "-",
                ]
            )
    say()
    say(
        table(
            ["writer", "entries/s", "+ retention records (+ contents for COPY)"],
            rows,
            title=f"== append, row vs statement triggers: {total:,} message entries per line, "
            f"{TRIGGER_ROUNDS} alternating rounds ({server_settings})",
        )
    )
    for batch in TRIGGER_BATCHES:
        mode = TRIGGER_MODES[-1]
        others = ", ".join(
            f"{m}: {rate(total / spent[m, batch, True])}" for m in TRIGGER_MODES[:-1]
        )
        record(
            Figure(
                f"append + records, {mode} triggers, batch {batch:,}",
                total / spent[mode, batch, True],
                "entries/s",
                total / spent["copy", batch, True],
                "bare COPY",
                others,
            )
        )
    report = verify_ledger()
    assert report.intact, report.problems[:5]
