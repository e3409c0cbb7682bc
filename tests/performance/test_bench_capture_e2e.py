"""Capture end to end as `make run` runs it: from the first POST to the last message sealed.

The processes are the ones scripts/localdev.py's portal_commands() starts, with its arguments:
gunicorn (`clientwindow.wsgi`, 2 sync workers, access log on stdout), the sealing process
(`manage.py run_sequencer`, messaging/sealer.py, started through
tests/performance/bench_sequencer.py's `sealer` mode, which only adds measurements around
call_command) and django-q2's `manage.py qcluster` (its every-minute sweep is the fallback
sealer, and the tasks sealing wakes compete for the same two cores). DATABASE_CONN_MAX_AGE is
settings' default (60) and DEBUG is what `make run` has (on, CLIENTWINDOW_LOCAL=1) unless
BENCH_E2E_DEBUG=0. The load is tests/performance/bench_load.py: SENDERS concurrent senders
POSTing Meta-shaped deliveries of PER_DELIVERY text messages as fast as they are answered.

Durability: a firm's PostgreSQL runs with fsync and synchronous_commit on; `make bench`'s
throwaway cluster has them off. Run this file under CLIENTWINDOW_THROWAWAY_DURABLE=1 (localdev
then starts the throwaway cluster with the durable settings `make run` has); the output names
the cluster's settings and says when they are not durable.

Beside it, in the same run on the same cluster: ledger.append of exactly the facts the run
sealed, in the same transactions (the ceiling: the hash chain and its triggers), appended on top
of the same ledger; and the raw write of those entry and content rows into plain tables.

BENCH_CAPTURE_ARCHIVE=N seals N messages (20 per delivery, through the real sequencer, with
synchronous_commit off for that session only) before the measured run, then VACUUM ANALYZEs as
autovacuum would have, so that the run meets an archive of that size. A size name (10k, 100k, 1M,
10M) runs instead on the cached benchmark archive of tests/performance/archive_scale.py (docs/
SCALE.md §1; built once, hours at 10M): gunicorn, run_sequencer and qcluster get its cluster's
environment, and its cluster is started with the durable settings when this file runs under
CLIENTWINDOW_THROWAWAY_DURABLE=1 (localdev.Cluster reads it; the archive was built without
them). Up to 1M the run writes to a copy of the archive (dropped afterwards); at 10M there is no
disk for a copy, so it commits into the cached archive itself: each run adds its 10,000 messages
(a channel of the archive, its existing clients) and the ceiling's ledger entries to it, and
prints the ledger's size before and after. On a cached archive the load comes from that
archive's first channel and its clients (bench_review.py's numbers and names), so the run
writes to conversations the archive already holds, as a firm's day does.

On every archive but an empty one the sequencer's per-batch queries are then EXPLAINed
(ANALYZE, BUFFERS) on it, after the run, with ledger.append's ceiling on the same archive. Two
sizes in one go make the figure: BENCH_CAPTURE_ARCHIVE=10k,1M (the ratio to the first).
BENCH_SCALE=10M makes the default 10k,10M; otherwise it is 0 (an empty archive, `make bench`).

The schedules qcluster runs daily or hourly (the full verification, disposition, sampling) are
set as if they had just run: a ten-second run of a running system rarely meets them, while an
archive opened hours after its build finds them all due at once; so is the media fetch (a
cached archive's media were never fetched). The every-minute ones (the sweep, the backlog
alarm, anchoring, checkpoints) run as they would.

Environment: BENCH_CAPTURE_E2E_MESSAGES (10000), BENCH_CAPTURE_ARCHIVE (0), BENCH_E2E_QCLUSTER
(1), BENCH_E2E_DEBUG (unset: as `make run`), BENCH_SQL_TIMING=1 (the sealer's statements, timed),
BENCH_E2E_PROFILE=1 (a cProfile of the sealer process), BENCH_E2E_PHASES=1 (its phases, timed),
BENCH_E2E_WARMUP (2000: messages sealed in this process before the clock starts, `warm_up`).
The 10M figure, once the 10M archive is built:

    CLIENTWINDOW_THROWAWAY_DURABLE=1 BENCH_E2E_PHASES=1 BENCH_CAPTURE_ARCHIVE=10k,10M \
      uv run --frozen python scripts/localdev.py throwaway -- uv run --frozen pytest \
      tests/performance/test_bench_capture_e2e.py -q -s -p no:randomly --no-header
"""

import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, connections
from psycopg import sql

from archive import ledger
from archive.verify import NotVerified, verify_ledger
from messaging import sequencer
from messaging.models import Channel, Delivery, Message, StatusEvent
from tests.conftest import superuser_connect
from tests.performance import bench_load, bench_review
from tests.performance.archive_scale import ScaleArchive, open_archive, size_of
from tests.performance.conftest import (
    SCRATCH_TABLES,
    Figure,
    rate,
    record,
    say,
    seconds,
    store_deliveries,
    table,
)
from tests.performance.test_bench_capture import (
    ROOT,
    app_env,
    children,
    count,
    cpu_seconds,
    gunicorn,
    inbox_table,
    json_result,
    ledger_transactions,
    load_config,
    postgres_cpu,
    postmaster_pid,
    raw_write,
    reset,
    start_load,
)

__all__ = ["inbox_table"]  # a fixture: reset() empties its table


@dataclass(frozen=True)
class ArchiveSize:
    """What one run meets: `messages` sealed in this session first, or a cached scale archive."""

    label: str
    messages: int
    cached: bool

    @classmethod
    def parse(cls, text: str) -> "ArchiveSize":
        text = text.strip()
        if text.isdigit():
            return cls(f"{int(text):,}", int(text), cached=False)
        label, messages = size_of(text)
        return cls(label, messages, cached=True)


MESSAGES = int(os.environ.get("BENCH_CAPTURE_E2E_MESSAGES", "10000"))
SCALE = os.environ.get("BENCH_SCALE", "").upper()
DEFAULT_ARCHIVES = "10k,10M" if SCALE == "10M" else "0"
ARCHIVES = [
    ArchiveSize.parse(n)
    for n in os.environ.get("BENCH_CAPTURE_ARCHIVE", DEFAULT_ARCHIVES).split(",")
]
QCLUSTER = os.environ.get("BENCH_E2E_QCLUSTER", "1") != "0"
DEBUG = os.environ.get("BENCH_E2E_DEBUG")  # None: as `make run` (DEBUG on under localdev)
PER_DELIVERY = 20
SENDERS = 16
DEADLINE = 300.0
FILL_CHUNK = 500  # deliveries stored, then sealed, per round of the archive fill
TARGET = 1_500.0
WARMUP = int(os.environ.get("BENCH_E2E_WARMUP", "2000"))  # messages sealed before the clock
PLAN_WIDTH = 160
COPY_UP_TO = 1_000_000  # a cached archive up to this size is written on a copy (45 GB at 10M)


def make_run_env(archive: ScaleArchive | None = None) -> dict[str, str]:
    """The environment `make run` gives its processes (CLIENTWINDOW_LOCAL=1, settings'
    defaults), pointed at this session's test database or at a cached archive."""
    env = {**app_env(60), **(archive.env() if archive else {})}
    env.pop("DATABASE_CONN_MAX_AGE")
    env.pop("CLIENTWINDOW_DEBUG")
    if DEBUG is not None:
        env["CLIENTWINDOW_DEBUG"] = DEBUG
    return env


def durability(connect: Callable[[], psycopg.Connection[Any]]) -> tuple[bool, str]:
    with connect() as conn:
        shown = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "full_page_writes")
        }
    text = ", ".join(f"{k}={v}" for k, v in shown.items())
    return all(v == "on" for v in shown.values()), text


@contextlib.contextmanager
def started(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A process in a group of its own (as localdev starts them); SIGTERM, then SIGKILL after
    4 s (qcluster ignores SIGTERM for a minute: localdev's STOP_GRACE)."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=4)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def stop_sealer(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    process.send_signal(signal.SIGTERM)
    return json_result(process, timeout=60)


def group_cpu(pid: int) -> float:
    """CPU of a process and all its descendants (qcluster's workers are its grandchildren)."""
    return cpu_seconds(pid) + sum(group_cpu(c) for c in children(pid))


# --------------------------------------------------------------------------- the archive


def fill_archive(messages: int) -> float:
    """Seal `messages` text messages (PER_DELIVERY per delivery) through the real sequencer,
    in-process; returns seconds. Clients grow with the archive (one per 200 messages), so that
    participants and conversations do too."""
    began, made = time.perf_counter(), 0
    clients = max(500, messages // 200)
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")  # this session only: a fill, not a run
    number = 0
    while made < messages:
        deliveries = min(FILL_CHUNK, (messages - made) // PER_DELIVERY) or 1
        bodies = bench_load.build_bodies(
            {
                **load_config("burst", 0, count=deliveries, per_delivery=PER_DELIVERY),
                "prefix": f"A{number:05d}",
                "clients": clients,
                "seed": number,
            }
        )
        received = int(time.time())
        store_deliveries([(body, received) for body in bodies])
        sequencer.process_deliveries()
        made += deliveries * PER_DELIVERY
        number += 1
        if number % 20 == 0:
            say(f"   archive: {made:,} messages sealed in {time.perf_counter() - began:,.0f} s")
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = DEFAULT")
    connections.close_all()
    with superuser_connect() as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - began


def explain(label: str, query: Any) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of a sequencer queryset, as the sequencer sends it."""
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return [f"-- {label}", *(shorten(row[0]) for row in cursor.fetchall())]


def shorten(line: str) -> str:
    """A plan line with its key arrays (2,000 wamids) cut to what a reader needs."""
    return line if len(line) <= PLAN_WIDTH else line[: PLAN_WIDTH - 1] + "…"


def sequencer_plans(first_delivery: int) -> list[str]:
    """The per-batch queries of messaging/sequencer.py on this archive: what a batch of the
    run's newest deliveries reads (present keys) and what a batch of new ones would (absent)."""
    deliveries = list(Delivery.objects.filter(id__gt=first_delivery).order_by("-id")[:100])
    items = [i for d in deliveries for i in sequencer.cloud_api.parse(bytes(d.body))]
    channels = {c.phone_number_id: c for c in Channel.objects.all()}
    keys = sequencer.lookup_keys(items)  # a batch of the run's messages: no status among them
    # a batch of statuses: the archive's newest 2,000 (on whichever channels they are)
    newest = list(
        StatusEvent.objects.order_by("-id").values_list("channel__phone_number_id", "wamid")[:2000]
    )
    statuses = sequencer.LookupKeys(
        wamids=set(), statuses=set(newest), participants=set(), conversations=set()
    )
    absent = sequencer.LookupKeys(
        wamids={(n, w + "-new") for n, w in keys.wamids},
        statuses={(n, w + "-new") for n, w in keys.wamids},
        participants={k + "0" for k in keys.participants},
        conversations={(n, k + "0") for n, k in keys.conversations},
    )
    lines: list[str] = []
    lines += explain("pending deliveries (none pending)", sequencer.pending(sequencer.BATCH))
    lines += explain("channels", Channel.objects.all())
    for name, found in (("present", keys), ("present", statuses), ("absent", absent)):
        for label, query in sequencer.existing_queries(channels, found).items():
            lines += explain(f"{label}, {name} keys", query)
    return lines


# --------------------------------------------------------------------------- a cached archive


def quiet_schedules(conn: psycopg.Connection[Any]) -> None:
    """No queued tasks; the daily and hourly schedules as if they had just run (the module's
    docstring says why), and the media fetch: a cached archive's media were never fetched (its
    build seals without a worker), so its first runs would try the downloads a running system
    made as they came (35 attempts, each a ledger entry, in a run at 1M). The every-minute ones
    are left due."""
    conn.execute("TRUNCATE django_q_ormq, django_q_task")
    conn.execute(
        "UPDATE django_q_schedule SET next_run = now() + CASE schedule_type"
        " WHEN 'I' THEN interval '1 hour' WHEN 'H' THEN interval '1 hour'"
        " WHEN 'D' THEN interval '1 day' WHEN 'W' THEN interval '7 days'"
        " ELSE interval '28 days' END"
        " WHERE schedule_type <> 'I' OR func = 'messaging.tasks.fetch_media'"
    )


@contextlib.contextmanager
def raw_tables(archive: ScaleArchive) -> Iterator[Callable[[], None]]:
    """conftest's `scratch` tables, in the archive's database (the raw write's ceiling must
    write where the run wrote); dropped afterwards."""
    runtime = sql.Identifier(settings.DATABASES["default"]["USER"])
    names = [sql.Identifier(name) for name in SCRATCH_TABLES]
    with archive.connect() as conn:
        for name, columns in zip(names, SCRATCH_TABLES.values(), strict=True):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(name, sql.SQL(columns)))
            conn.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(name, runtime))

    def empty() -> None:
        with archive.connect() as conn:
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(names)))

    try:
        yield empty
    finally:
        with archive.connect() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(", ").join(names)))


def archive_load() -> dict[str, Any]:
    """The load's channel and clients on a cached archive: its first channel and the clients
    bench_review.py gave it (but the one whose 5,000-message conversation the review benchmark
    reads), with their names (so no profile changes either); its messages sent the
    day before the generator's first, so that a run committed into the archive stays out of the
    newest messages the review benchmark reads backwards. Sent on the day they ran, the first
    runs at 10M made its "last 30 days" their 12,000 messages (docs/SCALE.md §7d); sent in the
    generator's last hour, eight runs made its newest 109,000 messages one channel's and the
    load's few texts (§7e)."""
    channel = bench_review.CHANNELS[0]
    contacts = [
        [bench_review.client_number(c), bench_review.client_name(c)]
        for c in range(bench_review.CLIENTS)
        # not the review benchmark's 5,000-message client, whose transcript it times
        if bench_review.client_channel(c) == 0 and c != bench_review.BIG_CLIENT
    ]
    return {
        "phone_number_id": channel["phone_number_id"],
        "display_number": channel["display_number"],
        "waba_id": channel["waba_id"],
        "contacts": contacts,
        "start": bench_review.START - 24 * 3600,
    }


def ledger_size() -> tuple[int, int]:
    """(ledger entries, the newest message id): cheap at any size."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT size FROM archive_chainhead WHERE id = 1),"
            " (SELECT coalesce(max(id), 0) FROM messaging_message)"
        )
        entries, message = cursor.fetchone()
    return int(entries), int(message)


def cached_run(size: ArchiveSize, prefix: str) -> dict[str, Any]:
    """One run on a cached archive (a copy up to COPY_UP_TO, else the archive itself)."""
    writable = size.messages <= COPY_UP_TO
    began = time.perf_counter()
    with (
        open_archive(size.label, writable=writable) as archive,
        archive.django(),
        raw_tables(archive) as scratch,
    ):
        opened = time.perf_counter() - began
        durable, settings_text = durability(archive.connect)
        where = "a copy of it" if writable else "the cached archive itself (no copy: no disk)"
        say(
            f"   cached archive {size.label} ({archive.build.get('messages', size.messages):,}"
            f" messages), opened in {seconds(opened)}; {settings_text}"
            + ("" if durable else " (NOT durable: run under CLIENTWINDOW_THROWAWAY_DURABLE=1)")
            + f"; the run writes to {where}"
        )
        with archive.connect() as conn:
            quiet_schedules(conn)
        before = ledger_size()
        run = e2e_run(size, prefix, scratch, make_run_env(archive), archive_load())
        after = ledger_size()
        run["durable"], run["growth"] = durable, (before, after, writable)
        say(
            f"   ledger {before[0]:,} → {after[0]:,} entries (+{after[0] - before[0]:,}: the"
            f" warm-up's {run['warmed']:,}, the run's {run['entries']:,} and the ceiling's as"
            f" many), newest message id {before[1]:,} → {after[1]:,}"
            + ("; on the copy, dropped now" if writable else "; kept in the cached archive")
        )
    return run


# --------------------------------------------------------------------------- the run


def e2e_run(
    size: ArchiveSize,
    prefix: str,
    scratch: Callable[[], None],
    env: dict[str, str],
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The measured run, then its checks, the plans, and the ceilings on the same database:
    `env` points the processes at it, `source` overrides the load's channel and clients."""
    deliveries = MESSAGES // PER_DELIVERY
    config = load_config(
        "burst", 0, count=deliveries, per_delivery=PER_DELIVERY, connections=SENDERS, prefix=prefix
    )
    config.update(source or {})
    warmed = warm_up(config)
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM messaging_delivery")
        first_delivery = int(cursor.fetchone()[0])
        cursor.execute("SELECT coalesce(max(seq), 0) FROM archive_ledgerentry")
        first_seq = int(cursor.fetchone()[0])
    postmaster = postmaster_pid()
    sealer_command = [sys.executable, "-m", "tests.performance.bench_sequencer", "sealer"]
    qcluster = [sys.executable, "manage.py", "qcluster"] if QCLUSTER else ["sleep", "3600"]
    sealed_query = (
        f"SELECT count(*) FROM messaging_deliveryseal WHERE delivery_id > {first_delivery}"
    )
    with (
        started(sealer_command, env) as sealer,
        started(qcluster, env) as worker,
        gunicorn("clientwindow", "localdev", 60, env) as (master, config["port"]),
    ):
        time.sleep(2.0)  # the sealer LISTENing, the qcluster's workers up
        web = children(master)
        cpu0 = (
            sum(cpu_seconds(p) for p in web),
            group_cpu(sealer.pid),
            group_cpu(worker.pid),
            postgres_cpu(postmaster),
        )
        load = start_load(config)
        deadline, done = time.time() + DEADLINE, None
        while time.time() < deadline:
            if count(sealed_query) >= deliveries:
                done = time.time()
                break
            time.sleep(0.02)
        cpu1 = (
            sum(cpu_seconds(p) for p in web),
            group_cpu(sealer.pid),
            group_cpu(worker.pid),
            postgres_cpu(postmaster),
        )
        posted = json_result(load, timeout=60)
        seal_report = stop_sealer(sealer)
    assert done is not None, f"not all sealed after {DEADLINE:.0f} s"
    assert posted["errors"] == 0, posted
    wall = done - posted["first_post"]
    check = check_run(first_delivery, deliveries)
    groups = ledger_transactions(since=first_seq)
    plans = sequencer_plans(first_delivery) if size.messages else []
    began = time.perf_counter()
    for group in groups:
        ledger.append(group)
    appended = time.perf_counter() - began
    raw = raw_write(groups, scratch, since=first_seq)
    batches = batch_sizes(first_delivery)
    kinds = collections.Counter(fact.kind for group in groups for fact in group)
    return {
        "archive": size,
        "warmed": warmed,
        "kinds": kinds,
        "wall": wall,
        "ack": posted["last_answer"] - posted["first_post"],
        "post_p99": posted["latency"]["p99"],
        "append": appended,
        "raw": raw,
        "transactions": len(groups),
        "entries": sum(len(g) for g in groups),
        "batches": batches,
        "cpu": [(b - a) / wall for a, b in zip(cpu0, cpu1, strict=True)],
        "sealer": seal_report,
        "check": check,
        "plans": plans,
    }


def warm_up(config: dict[str, Any]) -> int:
    """Seal WARMUP messages like the run's (same channel and clients, new wamids) in this
    process before the clock starts, after flushing the page cache's dirty pages (os.sync: a
    copy of the archive just made is still being written back): a running system's write
    paths are in memory, a cluster just started or copied has them on disk. Returns the
    ledger entries it added."""
    os.sync()
    if not WARMUP:
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT size FROM archive_chainhead WHERE id = 1")
        before = int(cursor.fetchone()[0])
    bodies = bench_load.build_bodies(
        {**config, "count": WARMUP // PER_DELIVERY, "prefix": config["prefix"] + "W", "seed": 7}
    )
    received = int(time.time())
    store_deliveries([(body, received) for body in bodies])
    while sequencer.process_deliveries():
        pass
    with connection.cursor() as cursor:
        cursor.execute("SELECT size FROM archive_chainhead WHERE id = 1")
        return int(cursor.fetchone()[0]) - before


def check_run(first_delivery: int, deliveries: int) -> str:
    """Every delivery of the run sealed once, every message stored once, the ledger intact:
    from the newest checkpoint a verification recorded when there is one (the 10M archive after
    test_bench_verify.py: minutes saved), else the whole ledger without its contents."""
    try:
        report = verify_ledger(incremental=True)
    except NotVerified:
        report = verify_ledger(contents=False)
    assert report.intact, report.problems[:5]
    run = Delivery.objects.filter(id__gt=first_delivery)
    assert run.count() == deliveries
    assert run.filter(seal__isnull=True).count() == 0
    assert Message.objects.filter(delivery_id__gt=first_delivery).count() == MESSAGES
    seals = f"FROM messaging_deliveryseal WHERE delivery_id > {first_delivery}"
    assert count(f"SELECT count(*) {seals}") == deliveries
    assert count(f"SELECT coalesce(sum(duplicates + unparsed), 0) {seals}") == 0
    return (
        f"verified ({report.mode}): ledger intact ({report.entries:,} entries,"
        f" {seconds(report.seconds)}),"
        f" {deliveries:,} deliveries sealed"
        f" once, {MESSAGES:,} messages, no duplicates/unparsed"
    )


def batch_sizes(first_delivery: int) -> dict[str, float]:
    """Deliveries per sealing transaction (one sealed_at per ledger append)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM messaging_deliveryseal s JOIN archive_ledgerentry e USING (seq)"
            " WHERE s.delivery_id > %s GROUP BY e.sealed_at",
            [first_delivery],
        )
        sizes = sorted(int(r[0]) for r in cursor.fetchall())
    return {
        "count": len(sizes),
        "mean": sum(sizes) / len(sizes),
        "p50": sizes[len(sizes) // 2],
        "max": sizes[-1],
    }


def test_capture_end_to_end(
    empty_ledger: None, inbox_table: None, scratch: Callable[[], None], server_settings: str
) -> None:
    durable, settings_text = durability(superuser_connect)
    say()
    say(
        f"== capture end to end as `make run` runs it (this session's cluster: {settings_text}"
        + ("" if durable else "; NOT durable: run under CLIENTWINDOW_THROWAWAY_DURABLE=1")
        + f"; {server_settings})"
    )
    runs = []
    for number, size in enumerate(ARCHIVES):
        prefix = f"E{number}T{int(time.time())}"  # wamids new to a cached archive, run after run
        if size.cached:
            run = cached_run(size, prefix)
        else:
            reset(scratch)
            with superuser_connect() as conn:
                quiet_schedules(conn)
            if size.messages:
                filled = fill_archive(size.messages)
                say(f"   archive of {size.label} messages sealed in {filled:,.0f} s")
            run = e2e_run(size, prefix, scratch, make_run_env())
            run["durable"] = durable
        runs.append(run)
        say(
            f"   archive {archive_name(run)}: {rate(MESSAGES / run['wall'])} messages/s end to end;"
            f" {run['check']}"
        )
        say(
            "   its ledger entries by kind (the sealer's and what qcluster's tasks appended): "
            + ", ".join(f"{kind} {n:,}" for kind, n in run["kinds"].most_common(8))
        )
    rows, detail = [], []
    base = MESSAGES / runs[0]["wall"]
    for run in runs:
        ceiling = MESSAGES / run["append"]
        rows.append(
            [
                archive_name(run),
                "yes" if run["durable"] else "NO",
                seconds(run["ack"]),
                rate(MESSAGES / run["ack"]),
                seconds(run["wall"]),
                rate(MESSAGES / run["wall"]),
                rate(ceiling),
                f"{MESSAGES / run['wall'] / ceiling:.2f}",
                f"{MESSAGES / run['wall'] / base:.2f}",
                rate(MESSAGES / run["raw"]),
                f"{work(run):,.1f} s",
            ]
        )
        b = run["batches"]
        detail.append(
            [
                archive_name(run),
                seconds(run["post_p99"]),
                f"{b['count']:,}",
                f"{b['mean']:.1f} / {b['p50']} / {b['max']}",
                f"{run['entries']:,} / {run['transactions']:,}",
                " / ".join(f"{c:.2f}" for c in run["cpu"]),
            ]
        )
        record(
            Figure(
                f"capture e2e as make run, {MESSAGES:,} msgs, archive {archive_name(run)}",
                MESSAGES / run["wall"],
                "messages/s",
                ceiling,
                "ledger.append same facts",
                "-",
                TARGET,
            )
        )
    say(
        table(
            [
                "archive (messages)",
                "durable",
                "acknowledged in",
                "acked msgs/s",
                "first POST→all sealed",
                "messages/s",
                "ceiling msgs/s",
                "÷ ceiling",
                "÷ first archive",
                "raw write msgs/s",
                "CPU used",
            ],
            rows,
            title=f"== {MESSAGES:,} text messages, {PER_DELIVERY} per delivery, {SENDERS}"
            " senders; gunicorn 2 sync workers + run_sequencer"
            + (" + qcluster" if QCLUSTER else "")
            + f"; DEBUG {'as make run (on)' if DEBUG is None else DEBUG}",
        )
    )
    say(
        "   ceiling = ledger.append of the facts the run sealed, in its transactions, on top of"
        " the same ledger; raw write = those entry + content rows into plain tables (COPY);"
        " CPU used = core-seconds of gunicorn, the sealer, qcluster and PostgreSQL, first POST"
        " → all sealed (the work; on a shared machine the wall clock is also what others take)."
    )
    say(
        table(
            [
                "archive",
                "POST p99",
                "sealing txns",
                "deliveries/txn mean / p50 / max",
                "ledger entries / txns",
                "CPU web / sealer / qcluster / PG",
            ],
            detail,
            title="== detail (CPU: cores used on average, first POST→all sealed; 2 cores here)",
        )
    )
    for run in runs:
        report_sealer(run)
        if run["plans"]:
            say()
            say(f"== the sequencer's per-batch queries on an archive of {archive_name(run)}")
            say("\n".join(run["plans"]))
    if len(runs) > 1:
        for run in runs[1:]:
            say(
                f"   archive {archive_name(run)} / archive {archive_name(runs[0])}:"
                f" {MESSAGES / run['wall'] / base:.2f} (target >= 0.90); CPU used per message"
                f" {work(run) / work(runs[0]):.2f} of the first's"
            )


def work(run: dict[str, Any]) -> float:
    """Core-seconds all the run's processes used from the first POST to the last seal."""
    return float(sum(run["cpu"]) * run["wall"])


def archive_name(run: dict[str, Any]) -> str:
    size: ArchiveSize = run["archive"]
    return f"{size.label} (cached)" if size.cached else size.label


def report_sealer(run: dict[str, Any]) -> None:
    report = run["sealer"]
    if report.get("phases"):
        say()
        say(
            table(
                ["phase (nested by indent)", "calls", "time"],
                [[name, f"{n:,}", seconds(t)] for name, n, t in report["phases"]],
                title=f"== sealer phases (BENCH_E2E_PHASES), archive {archive_name(run)}",
            )
        )
    if report.get("sql"):
        say()
        say(
            table(
                ["statement (ORM, IN lists collapsed)", "calls", "time"],
                [[q[:110], f"{n:,}", seconds(t)] for q, n, t in report["sql"]],
                title=f"== sealer SQL, archive {archive_name(run)}",
            )
        )
    for key, title in (("inclusive", "inclusive"), ("own", "own time")):
        if report.get(key):
            say()
            say(
                table(
                    ["function", "calls", "own", "inclusive"],
                    [[f[:90], f"{c:,}", seconds(o), seconds(i)] for f, c, o, i in report[key]],
                    title=f"== cProfile of the sealer, {title}, archive {archive_name(run)}",
                )
            )
