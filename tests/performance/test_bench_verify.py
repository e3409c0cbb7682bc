"""verify_archive's speed: the full run in one process and in N, and the incremental run.

Each figure beside its ceilings in the same run (this 2-core machine is shared: compare ratios):
- the bare `SELECT` of the same columns (entries and contents) over the same slices, streamed
  through named binary cursors and thrown away, in 1 and in N processes;
- bare hashlib SHA-256 over the same bytes, in one process: the leaf, the link, each content's
  commitment and one Merkle node per entry (what verification must hash, and nothing else);
- for the incremental run, the bare `SELECT` of the new entries and contents alone.

Sizes: BENCH_VERIFY_ENTRIES (default 1,000,000) entries with a 100-byte body each and a
checkpoint every 100,000, built with ledger.append() in batches of 5,000; then 10,000 new
entries and a checkpoint on top for the incremental run. BENCH_RUNS (default 3) interleaved
runs, medians. CPU per entry (this process and its workers; PostgreSQL's backends not counted)
is printed too: it is steadier than wall time on a busy machine.

At 10M: BENCH_SCALE=10M opens the cached 10,000,000-message archive of
tests/performance/archive_scale.py instead of building one; nothing else changes. It is used as
it is, not as a copy (a copy needs another ~45 GB of disk): the incremental run commits its
10,000 entries and a checkpoint into the cached archive, as the capture benchmark commits its
messages (the chain stays intact; the archive is 10,000 entries longer). Built by `python -m
tests.performance.archive_scale build 10M` beforehand (~75 min on a quiet machine); the full runs
then take about 10M / the entries/s printed here each, so BENCH_RUNS=1 at 10M (~10 min).
"""

import os
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import pytest
from django.db import connection, connections, transaction

from archive import ledger
from archive.chain_check import (
    CONTENTS_QUERY,
    ENTRIES_QUERY,
    Slice,
    join_snapshot,
    stream,
    stream_slice,
)
from archive.checkpoints import create_checkpoint
from archive.envelope import commitment_tag
from archive.ledger import Fact
from archive.models import VerifiedCheckpoint
from archive.verify import _conninfo, auto_workers, record_run, verify_ledger
from tests.conftest import superuser_connect, wipe_archive
from tests.performance.conftest import Figure, rate, record, say, seconds, table

ENTRIES = int(os.environ.get("BENCH_VERIFY_ENTRIES", "1000000"))
SCALE = os.environ.get("BENCH_SCALE", "")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
NEW = 10_000
BATCH = 5_000
CHECKPOINT_EVERY = 100_000
SLICE = 1 << 16  # archive.verify.SLICE_LEVEL
HASH_SAMPLE = 100_000
WORKERS = max(2, os.cpu_count() or 1)


def message(n: int) -> Fact:
    """A WhatsApp-message-like fact (as test_bench_ledger's), with a 100-byte private body."""
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
    return Fact("message.received", fields, {"body": os.urandom(50).hex().encode()})


def ledger_size() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT size FROM archive_chainhead WHERE id = 1")
        return int(cursor.fetchone()[0])


def grow(count: int, batch: int = BATCH) -> float:
    """Append `count` messages (a checkpoint every CHECKPOINT_EVERY, and at the end)."""
    started, size = time.perf_counter(), ledger_size()
    for first in range(size, size + count, batch):
        ledger.append([message(n) for n in range(first, min(first + batch, size + count))])
        if (first + batch) % CHECKPOINT_EVERY == 0:
            create_checkpoint()
    create_checkpoint()
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def archive(django_db_setup: None, django_db_blocker: Any) -> Iterator[int]:
    with django_db_blocker.unblock():
        if SCALE == "10M":
            from tests.performance.archive_scale import open_archive

            with open_archive("10M") as scaled, scaled.django():
                size = ledger_size()
                say(f"\n== the cached 10M archive: {size:,} entries (the incremental run commits")
                say(f"   {NEW:,} more into it)")
                yield size
            return
        wipe_archive()
        try:
            spent = grow(ENTRIES)
            with superuser_connect() as conn:  # as autovacuum would, before anyone reads it
                conn.execute("VACUUM (ANALYZE) archive_ledgerentry, archive_content")
            say(f"\n== built {ENTRIES:,} entries in {seconds(spent)} ({rate(ENTRIES / spent)})")
            yield ENTRIES
        finally:
            connections.close_all()
            wipe_archive()


# --------------------------------------------------------------------------- ceilings


def bare_select(start: int, end: int, workers: int) -> float:
    """Seconds to stream [start, end) through verify_ledger's slices and worker setup (one
    connection per process in an exported snapshot), rows thrown away (chain_check.stream_slice)."""
    jobs = [Slice(s, min(s + SLICE, end), 16, True) for s in range(start, end, SLICE)]
    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if workers == 1:
            for job in jobs:
                for query in (ENTRIES_QUERY, CONTENTS_QUERY):
                    for _row in stream(connection.connection, "c", query, (job.start, job.end)):
                        pass
        else:
            cursor.execute("SELECT pg_export_snapshot()")
            (snapshot,) = cursor.fetchone()
            with ProcessPoolExecutor(
                workers,
                mp_context=get_context("spawn"),
                initializer=join_snapshot,
                initargs=(_conninfo(connection.settings_dict), snapshot),
            ) as pool:
                list(pool.map(stream_slice, jobs))
    return time.perf_counter() - began


def bare_hashing(size: int) -> float:
    """Entries/s of hashlib alone over the same bytes (a sample of HASH_SAMPLE entries)."""
    import hashlib

    count = min(size, HASH_SAMPLE)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.envelope, e.link, c.name, c.salt, c.content FROM archive_ledgerentry e"
            " JOIN archive_content c USING (seq) WHERE seq < %s ORDER BY seq",
            [count],
        )
        rows = [(bytes(e), bytes(ln), n, bytes(s), bytes(c)) for e, ln, n, s, c in cursor]
    sha256, tag = hashlib.sha256, commitment_tag("body")
    began = time.perf_counter()
    previous = bytes(32)
    for envelope, link, _name, salt, content in rows:
        leaf = sha256(b"\x00" + envelope).digest()
        sha256(b"\x02" + previous + leaf).digest()
        sha256(tag + salt + content).digest()
        sha256(b"\x01" + leaf + previous).digest()  # one Merkle node per leaf, amortised
        previous = link
    return len(rows) / (time.perf_counter() - began)


# --------------------------------------------------------------------------- ours


def cpu_seconds() -> float:
    """CPU of this process and of its reaped children (verify_ledger's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_verify(expected: int, cpu: list[float], **kwargs: Any) -> float:
    before = cpu_seconds()
    report = verify_ledger(**kwargs)
    cpu.append(cpu_seconds() - before)
    assert report.intact, report.problems[:5]
    assert report.entries == expected, (report.entries, expected)
    return report.seconds


def median_rates(
    measures: dict[str, Callable[[], float]], entries: int
) -> dict[str, tuple[float, list[float]]]:
    times: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(RUNS):
        for name, measure in measures.items():
            times[name].append(measure())
    return {name: (statistics.median(values), values) for name, values in times.items()}


def test_verify_full(archive: int) -> None:
    """verify_ledger in 1 and in N processes beside the bare SELECT in 1 and N and hashlib."""
    size, workers = archive, WORKERS
    cpu: dict[str, list[float]] = {"1": [], "N": []}
    measures: dict[str, Callable[[], float]] = {
        "bare SELECT, 1 process": lambda: bare_select(0, size, 1),
        "verify_ledger, 1 process": lambda: timed_verify(size, cpu["1"], workers=1),
        f"bare SELECT, {workers} processes": lambda: bare_select(0, size, workers),
        f"verify_ledger, {workers} processes": lambda: timed_verify(
            size, cpu["N"], workers=workers
        ),
    }
    median = median_rates(measures, size)
    hashing = bare_hashing(size)
    rows = [
        [name, rate(size / m), seconds(m), ", ".join(seconds(v) for v in values)]
        for name, (m, values) in median.items()
    ]
    rows.append(["bare hashlib SHA-256, 1 process", rate(hashing), "-", "-"])
    say()
    say(
        table(
            ["what", "entries/s (median)", "median", "runs"],
            rows,
            title=f"== verify_archive, full: {size:,} entries, {RUNS} interleaved runs, "
            f"auto_workers would pick {auto_workers(size)}",
        )
    )
    for key, label in (("1", "1 process"), ("N", f"{workers} processes")):
        say(f"   CPU, {label}: {statistics.median(cpu[key]) / size * 1e6:.1f} µs per entry")
    one = size / median["verify_ledger, 1 process"][0]
    many = size / median[f"verify_ledger, {workers} processes"][0]
    say(f"   scaling: {many / one:.2f}x with {workers} processes")
    record(
        Figure(
            "verify full, 1 process",
            one,
            "entries/s",
            size / median["bare SELECT, 1 process"][0],
            "bare SELECT, 1 process",
        )
    )
    record(
        Figure(
            f"verify full, {workers} processes",
            many,
            "entries/s",
            size / median[f"bare SELECT, {workers} processes"][0],
            f"bare SELECT, {workers} processes",
            target=100_000.0,
        )
    )
    record(Figure("bare hashlib over the same bytes", hashing, "entries/s"))


def test_verify_incremental(archive: int) -> None:
    """10,000 new entries on top of the archive, verified from its last verified checkpoint."""
    size = archive
    # From the ledger's end: the capture benchmark commits its entries into the cached 10M
    # archive without a checkpoint, and an incremental run starts from the last verified one.
    create_checkpoint()
    run = record_run(verify_ledger(), trigger="bench")
    assert run.intact and VerifiedCheckpoint.objects.filter(run=run, checkpoint_id=size).exists()
    grow(NEW, batch=1_000)
    cpu: list[float] = []
    measures: dict[str, Callable[[], float]] = {
        "bare SELECT of the new entries": lambda: bare_select(size, size + NEW, 1),
        "verify_ledger(incremental=True)": lambda: timed_verify(NEW, cpu, incremental=True),
    }
    median = median_rates(measures, NEW)
    rows = [
        [name, seconds(m), rate(NEW / m), ", ".join(seconds(v) for v in values)]
        for name, (m, values) in median.items()
    ]
    say()
    say(
        table(
            ["what", "median", "entries/s", "runs"],
            rows,
            title=f"== verify_archive --incremental: {NEW:,} new entries on {size:,}, "
            f"{RUNS} interleaved runs",
        )
    )
    say(f"   CPU: {statistics.median(cpu) / NEW * 1e6:.1f} µs per new entry")
    record(
        Figure(
            f"verify incremental, {NEW:,} new on {size:,}",
            median["verify_ledger(incremental=True)"][0],
            "s",
            median["bare SELECT of the new entries"][0],
            "bare SELECT of the new entries",
            target=1.0,
        )
    )
