"""Capture benchmarks: the webhook under steady load, and sustained end-to-end capture.

The real app runs under gunicorn (`python -m gunicorn clientwindow.wsgi`, as deploy/ runs it)
against this session's test database, with CLIENTWINDOW_DEBUG=0 as in production and
DATABASE_CONN_MAX_AGE as named per run (deploy/env.example's default is 0). The load comes from
a separate OS process (tests/performance/bench_load.py), and the sequencer, when one runs, is
another process calling messaging.sequencer.process_deliveries() in a loop
(tests/performance/bench_sequencer.py; not django-q2's qcluster, so the figure is the
sequencer's and not the queue's). Nothing asserts on speed; correctness is asserted after every
run (every 200 is a stored delivery, everything sealed once, ledger intact).

1. Webhook latency at a steady 200 requests/s (open loop; latency from each request's
   *scheduled* send time to the end of its response, so any backlog counts), beside two
   ceilings served by the same gunicorn configuration (tests/performance/bench_wsgi.py): a WSGI
   app answering "ok", and one doing the inbox's essential work (HMAC check + one INSERT +
   COMMIT on a kept-open psycopg connection). One diagnostic row runs ClientWindow with the
   django-q2 wake-up after each delivery switched off, to show what it costs.
2. End-to-end capture: N messages POSTed as fast as 4 connections go, as Meta-style batched
   deliveries (50 and 100 messages each) and one message per delivery, while the sequencer
   seals; timed from the first POST to the moment messaging_deliveryseal holds every delivery
   (polled every 20 ms). Ceilings, same run: ledger.append of exactly the facts the run sealed
   (read back from the ledger), in the same transactions; and a raw write of the same entry and
   content rows into plain tables. Also shown: CPU per process group, and the ledger's
   sequential scans (the chain-check trigger's lookup must stay an index scan).

Between runs the archive is emptied with tests.conftest.wipe_archive() (TRUNCATE).

Environment: BENCH_STEADY_SECONDS (15), BENCH_CAPTURE_MESSAGES (20000),
BENCH_SINGLE_MESSAGES (20000, CONN_MAX_AGE=60), BENCH_SINGLE_DEPLOYED_MESSAGES (3000,
CONN_MAX_AGE=0: ~100 POSTs/s here), BENCH_PYSPY=1 to profile the sequencer process with py-spy
(found on PATH or in ~/.local/bin) and print where its time goes, BENCH_SQL_TIMING=1 to time
the sequencer's ORM statements, BENCH_VACUUM_AFTER_WIPE=1 to VACUUM ANALYZE the emptied tables
(reproduces the chain-check trigger's cached sequential-scan plan: quadratic sealing).
"""

import collections
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from psycopg import conninfo, sql

from archive import ledger
from archive.envelope import COMMIT_PREFIX, RESERVED_KEYS, Fact
from archive.verify import verify_ledger
from messaging.models import Channel, Delivery, DeliverySeal, Message
from tests.conftest import superuser_connect, wipe_archive
from tests.performance.conftest import Figure, rate, record, say, seconds, table

ROOT = Path(__file__).resolve().parents[2]
LOAD_SCRIPT = Path(__file__).with_name("bench_load.py")
SECRET = "bench-app-secret-4f1c9a"
CHANNEL = {
    "name": "Bench desk",
    "phone_number_id": "100000000000777",
    "display_number": "442079460777",
    "waba_id": "200000000000777",
}
WEBHOOK = "/webhooks/whatsapp/"
STEADY_SECONDS = float(os.environ.get("BENCH_STEADY_SECONDS", "15"))
WARMUP_SECONDS = 2.0
STEADY_RATE = 200
STEADY_CONNECTIONS = 32
CAPTURE_MESSAGES = int(os.environ.get("BENCH_CAPTURE_MESSAGES", "20000"))
SINGLE_MESSAGES = int(os.environ.get("BENCH_SINGLE_MESSAGES", "20000"))
# One message per POST with CONN_MAX_AGE=0 runs at ~100 POSTs/s here: fewer, to stay in time.
SINGLE_DEPLOYED_MESSAGES = int(os.environ.get("BENCH_SINGLE_DEPLOYED_MESSAGES", "3000"))
CAPTURE_CONNECTIONS = 4
CAPTURE_DEADLINE = 240.0
PYSPY = os.environ.get("BENCH_PYSPY", "") not in ("", "0")
VACUUM_AFTER_WIPE = os.environ.get("BENCH_VACUUM_AFTER_WIPE", "") not in ("", "0")

SERVERS = {
    "sync x4": {"workers": 4, "worker_class": "sync", "threads": 1},
    "gthread 2x4": {"workers": 2, "worker_class": "gthread", "threads": 4},
    # what `make run` starts (scripts/localdev.py portal_commands): 2 sync workers, access log
    "localdev": {"workers": 2, "worker_class": "sync", "threads": 1, "access_log": True},
}
APPS = {
    "ok": "tests.performance.bench_wsgi:ok",
    "inbox": "tests.performance.bench_wsgi:inbox",
    "clientwindow": "clientwindow.wsgi:application",
    "nowake": "tests.performance.bench_wsgi:clientwindow_nowake",
}
APP_LABELS = {
    "ok": "ceiling: WSGI 'ok'",
    "inbox": "ceiling: HMAC + INSERT + COMMIT",
    "clientwindow": "ClientWindow webhook",
    "nowake": "diagnostic: ClientWindow, no django-q wake",
}
INBOX_TABLE = "bench_inbox"
INBOX_COLUMNS = (
    "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_at timestamptz NOT NULL"
    " DEFAULT now(), body bytea NOT NULL, headers jsonb NOT NULL, remote_addr inet"
)


# --------------------------------------------------------------------------- processes


def database_url() -> str:
    """The runtime role's URL on this session's test database (as tests/messaging/test_crash)."""
    name = settings.DATABASES["default"]["NAME"]
    return os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name


def libpq_dsn() -> str:
    conf = settings.DATABASES["default"]
    return conninfo.make_conninfo(
        host=conf["HOST"],
        port=conf["PORT"] or None,
        user=conf["USER"],
        password=conf.get("PASSWORD") or None,
        dbname=conf["NAME"],
    )


def app_env(conn_max_age: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "clientwindow.settings",
        "CLIENTWINDOW_LOCAL": "1",
        "CLIENTWINDOW_DEBUG": "0",
        "WHATSAPP_APP_SECRET": SECRET,
        "DATABASE_CONN_MAX_AGE": str(conn_max_age),
        "BENCH_DSN": libpq_dsn(),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def tree_pss_kb(pid: int) -> int:
    """The proportional set size of a process and all its descendants, in kB: pages they share
    (libraries, fonts) counted once between them, not once each as RSS would."""
    total, family = 0, [pid]
    while family:
        member = family.pop()
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:  # it ended meanwhile
            continue
        total += next(int(line.split()[1]) for line in rollup.splitlines() if line[:4] == "Pss:")
        family += children(member)
    return total


class TreePeak:
    """`with TreePeak(pid) as peak: …`: the highest `tree_pss_kb(pid)` seen meanwhile, sampled
    every 50 ms in a thread (`peak.kb`). Processes need not peak at once, so this is less than
    the sum of their own peaks, and it is what the machine had to hold."""

    def __init__(self, pid: int) -> None:
        self.pid, self.kb = pid, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.done.wait(0.05):
            self.kb = max(self.kb, tree_pss_kb(self.pid))

    def __enter__(self) -> "TreePeak":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """utime + stime of `pid` (plus its reaped children's, with `reaped`), in seconds."""
    stat = proc_stat(pid)
    if stat is None:
        return 0.0
    ticks = int(stat[11]) + int(stat[12])
    if reaped:
        ticks += int(stat[13]) + int(stat[14])
    return ticks / TICK


def postgres_cpu(postmaster: int) -> float:
    """CPU of the whole cluster: live backends and helpers, plus those that already exited."""
    return cpu_seconds(postmaster, reaped=True) + sum(cpu_seconds(p) for p in children(postmaster))


def postmaster_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
    stat = proc_stat(backend)
    assert stat is not None, "the cluster's processes must be visible to measure its CPU"
    return int(stat[1])


@contextlib.contextmanager
def gunicorn(
    app: str, server: str, conn_max_age: int, env: dict[str, str] | None = None
) -> Iterator[tuple[int, int]]:
    """The app under gunicorn on a free port, started and warmed; yields (master pid, port)."""
    conf, port = SERVERS[server], free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        APPS[app],
        *["--config", str(ROOT / "gunicorn.conf.py")],  # as make run and deploy/ start it
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(conf["workers"]),
        "--worker-class",
        str(conf["worker_class"]),
        "--threads",
        str(conf["threads"]),
        *(["--access-logfile", "-"] if conf.get("access_log") else []),
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env or app_env(conn_max_age),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while len(children(process.pid)) < int(conf["workers"]) or not listening(port):
                assert process.poll() is None, f"gunicorn exited: {tail(log)}"
                assert time.monotonic() < deadline, f"gunicorn did not start: {tail(log)}"
                time.sleep(0.1)
            for _ in range(4 * int(conf["workers"])):  # import the URLconf, views, middleware
                get(port, WEBHOOK)
            yield process.pid, port
        finally:
            process.terminate()
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        logged = tail(log, 400)
    assert "Traceback" not in logged, f"gunicorn logged a traceback:\n{logged[-3000:]}"


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


def get(port: int, path: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)  # a loaded machine
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def tail(log: Any, lines: int = 30) -> str:
    log.seek(0)
    return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])


def load_config(mode: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "mode": mode,
        "host": "127.0.0.1",
        "port": port,
        "path": WEBHOOK,
        "secret": SECRET,
        "phone_number_id": CHANNEL["phone_number_id"],
        "display_number": CHANNEL["display_number"],
        "waba_id": CHANNEL["waba_id"],
        **extra,
    }


def start_load(config: dict[str, Any]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(LOAD_SCRIPT), json.dumps(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def json_result(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert process.returncode == 0 and lines, f"exit {process.returncode}: {err.decode()[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def pyspy() -> str | None:
    return shutil.which("py-spy") or next(
        (str(p) for p in [Path.home() / ".local/bin/py-spy"] if p.exists()), None
    )


def start_sequencer(target: int, profile_to: Path | None = None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tests.performance.bench_sequencer", str(target), "300"]
    if profile_to is not None:
        spy = pyspy()
        assert spy, "BENCH_PYSPY=1 needs py-spy (uv tool install py-spy)"
        command = [spy, "record", "--idle", "--format", "raw", "--rate", "200", "-o"]
        command += [str(profile_to), "--", sys.executable, "-m"]
        command += ["tests.performance.bench_sequencer", str(target), "300"]
    return subprocess.Popen(
        command, cwd=ROOT, env=app_env(0), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


# --------------------------------------------------------------------------- database


def reset(scratch: Callable[[], None] | None = None) -> None:
    """An empty archive and inbox, no queued tasks, and the bench channel.

    With BENCH_VACUUM_AFTER_WIPE=1, VACUUM ANALYZE the emptied tables too: their statistics then
    say "0 rows" (reltuples 0) instead of "never analyzed" (-1, which makes the planner assume 10
    pages), the state a real but young archive can be in after autovacuum's first pass.
    """
    connections.close_all()
    wipe_archive()
    with superuser_connect() as conn:
        conn.execute("TRUNCATE django_q_ormq, django_q_task")
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(INBOX_TABLE)))
        if VACUUM_AFTER_WIPE:
            conn.execute("VACUUM ANALYZE")
    if scratch is not None:
        scratch()
    Channel.objects.create(**CHANNEL)


@pytest.fixture(scope="module")
def inbox_table(django_db_setup: None) -> Iterator[None]:
    runtime = sql.Identifier(settings.DATABASES["default"]["USER"])
    table_name = sql.Identifier(INBOX_TABLE)
    with superuser_connect() as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table_name))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table_name, sql.SQL(INBOX_COLUMNS)))
        conn.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(table_name, runtime))
    yield
    with superuser_connect() as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table_name))
        conn.execute("TRUNCATE django_q_ormq, django_q_task")


def count(query: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(query)
        return int(cursor.fetchone()[0])


def pg_sessions() -> int:
    """Sessions opened on this database so far (PostgreSQL 14+)."""
    return count("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")


def ledger_scans() -> tuple[int, int, int]:
    """(sequential scans, rows they read, index scans) of archive_ledgerentry so far."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(seq_scan, 0), coalesce(seq_tup_read, 0), coalesce(idx_scan, 0)"
            " FROM pg_stat_user_tables WHERE relname = 'archive_ledgerentry'"
        )
        seq_scan, seq_read, idx_scan = cursor.fetchone()
    return int(seq_scan), int(seq_read), int(idx_scan)


def check_capture(deliveries: int, messages: int) -> str:
    """Everything sealed once, nothing pending, the ledger intact; returns a one-line summary."""
    report = verify_ledger()
    assert report.intact, report.problems[:5]
    assert Delivery.objects.count() == deliveries
    assert DeliverySeal.objects.count() == deliveries
    assert Delivery.objects.filter(seal__isnull=True).count() == 0
    assert Message.objects.count() == messages
    assert count("SELECT coalesce(sum(duplicates + unparsed), 0) FROM messaging_deliveryseal") == 0
    return (
        f"verified: ledger intact ({report.entries:,} entries, verify {seconds(report.seconds)}),"
        f" {deliveries:,} deliveries all sealed, {messages:,} messages, no duplicates/unparsed"
    )


def ledger_transactions(since: int = 0) -> list[list[Fact]]:
    """The facts the ledger holds after entry `since`, rebuilt from envelopes and contents,
    grouped by the append() call that sealed them (one sealed_at per call)."""
    contents: dict[int, dict[str, bytes]] = collections.defaultdict(dict)
    groups: list[list[Fact]] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, name, content FROM archive_content WHERE seq > %s", [since])
        for seq, name, content in cursor.fetchall():
            contents[seq][name] = bytes(content)
        cursor.execute(
            "SELECT seq, envelope, sealed_at FROM archive_ledgerentry WHERE seq > %s ORDER BY seq",
            [since],
        )
        previous = None
        for seq, envelope, sealed_at in cursor.fetchall():
            document = json.loads(bytes(envelope))
            fields = {
                k: v
                for k, v in document.items()
                if k not in RESERVED_KEYS and not k.startswith(COMMIT_PREFIX)
            }
            if sealed_at != previous:
                groups.append([])
                previous = sealed_at
            groups[-1].append(Fact(document["kind"], fields, contents[seq]))
    return groups


def raw_write(groups: list[list[Fact]], scratch: Callable[[], None], since: int = 0) -> float:
    """Seconds to write the ledger's entry and content rows after entry `since` again into plain
    tables (no hashing, triggers, constraints or indexes), in the same transactions: COPY, or
    INSERT below 8 rows, as append() chooses."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq, kind, envelope, leaf_hash, link, sealed_at FROM archive_ledgerentry"
            " WHERE seq > %s ORDER BY seq",
            [since],
        )
        entries = cursor.fetchall()
        cursor.execute(
            "SELECT seq, name, salt, content FROM archive_content WHERE seq > %s ORDER BY seq",
            [since],
        )
        by_seq: dict[int, list[tuple[Any, ...]]] = collections.defaultdict(list)
        for row in cursor.fetchall():
            by_seq[row[0]].append(row)
    scratch()
    started, position = time.perf_counter(), 0
    for group in groups:
        rows = entries[position : position + len(group)]
        content_rows = [c for e in rows for c in by_seq[e[0]]]
        position += len(group)
        with transaction.atomic(), connection.cursor() as cursor:
            for name, columns, data in (
                ("bench_raw_entry", "seq, kind, envelope, leaf_hash, link, sealed_at", rows),
                ("bench_raw_content", "seq, name, salt, content", content_rows),
            ):
                raw = cursor.cursor
                if len(data) >= 8:
                    with raw.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                        for row in data:
                            copy.write_row(row)
                elif data:
                    marks = ", ".join(["%s"] * len(data[0]))
                    raw.executemany(f"INSERT INTO {name} ({columns}) VALUES ({marks})", data)
    spent = time.perf_counter() - started
    scratch()
    return spent


# --------------------------------------------------------------------------- 1. latency


STEADY_RUNS = [
    # (server, app, DATABASE_CONN_MAX_AGE, with a sequencer sealing concurrently)
    ("sync x4", "ok", 0, False),
    ("sync x4", "inbox", 0, False),
    ("sync x4", "clientwindow", 0, False),  # as deploy/ runs it (env.example: CONN_MAX_AGE=0)
    ("sync x4", "nowake", 0, False),
    ("sync x4", "clientwindow", 60, False),
    ("sync x4", "clientwindow", 60, True),
    ("gthread 2x4", "ok", 60, False),
    ("gthread 2x4", "inbox", 60, False),
    ("gthread 2x4", "clientwindow", 60, False),
]
DJANGO_APPS = ("clientwindow", "nowake")


def test_webhook_latency(empty_ledger: None, inbox_table: None, server_settings: str) -> None:
    rows, results = [], {}
    postmaster = postmaster_pid()
    for number, (server, app, conn_max_age, sealing) in enumerate(STEADY_RUNS):
        reset()
        config = load_config(
            "steady",
            0,
            rate=STEADY_RATE,
            seconds=STEADY_SECONDS,
            warmup=WARMUP_SECONDS,
            connections=STEADY_CONNECTIONS,
            per_delivery=1,
            prefix=f"L{number}",
        )
        total = int((WARMUP_SECONDS + STEADY_SECONDS) * STEADY_RATE)
        with gunicorn(app, server, conn_max_age) as (master, config["port"]):
            sequencer = start_sequencer(total) if sealing else None
            pg0, workers = postgres_cpu(postmaster), children(master)
            web0, sessions0 = sum(cpu_seconds(p) for p in workers), pg_sessions()
            began = time.perf_counter()
            result = json_result(start_load(config), timeout=STEADY_SECONDS + 120)
            wall = time.perf_counter() - began
            web_cpu = sum(cpu_seconds(p) for p in workers) - web0
            pg_cpu = postgres_cpu(postmaster) - pg0
            sealed = json_result(sequencer, timeout=120) if sequencer else None
        time.sleep(0.6)  # PostgreSQL publishes a backend's statistics at most every 500 ms
        sessions = pg_sessions() - sessions0
        results[server, app, conn_max_age, sealing] = result
        label = APP_LABELS[app] + (" + sequencer" if sealing else "")
        scheduled, sent = result["from_scheduled"], result["from_sent"]
        rows.append(
            [
                f"{server}, {label}",
                str(conn_max_age) if app in DJANGO_APPS else "-",
                f"{result['sent']:,}",
                str(result["errors"]),
                f"{result['achieved_rate']:,.0f}",
                *(seconds(scheduled[p]) for p in ("p50", "p90", "p99", "max")),
                seconds(sent["p50"]),
                seconds(sent["p99"]),
                seconds(result["send_lag"]["max"]),
                f"{sessions / total:.2f}",
                f"{web_cpu / wall:.2f} / {pg_cpu / wall:.2f}",
            ]
        )
        say(f"   {rows[-1][0]}: p50 {rows[-1][5]}, p99 {rows[-1][7]}, errors {result['errors']}")
        if result["errors"]:
            say(f"   error samples: {result['statuses']} {result['error_samples']}")
        if app in DJANGO_APPS:
            assert result["errors"] == 0
            assert Delivery.objects.count() == result["total_ok"] == total
        if app == "inbox":
            assert count(f"SELECT count(*) FROM {INBOX_TABLE}") == result["total_ok"] == total
        if sealed is not None:
            say("   " + check_capture(total, total) + f"; sequencer: {sealed}")
    say()
    say(
        table(
            [
                "gunicorn, app",
                "CONN_MAX_AGE",
                "requests",
                "errors",
                "req/s",
                "p50",
                "p90",
                "p99",
                "max",
                "p50 sent",
                "p99 sent",
                "max send lag",
                "PG sessions/req",
                "CPU web / PG",
            ],
            rows,
            title=f"== webhook at a steady {STEADY_RATE} req/s for {STEADY_SECONDS:.0f} s"
            f" (after {WARMUP_SECONDS:.0f} s warm-up), open loop from a separate process,"
            f" {STEADY_CONNECTIONS} client threads; one text message per POST ({server_settings})",
        )
    )
    say(
        "   p50/p90/p99/max: from each request's scheduled send time to the end of its response;"
        " 'sent': from the actual send. Send lag: how late the load process sent (its own"
        " backlog). PG sessions/req: PostgreSQL sessions opened per request (pg_stat_database)."
        " CPU: cores used on average by the gunicorn workers and by all of PostgreSQL."
        " DEBUG off; 'sync x4' is deploy/'s configuration."
    )
    inbox = results["sync x4", "inbox", 0, False]["from_scheduled"]
    reference = "HMAC+INSERT sync: p99 44 ms at 590 req/s"
    for name, key, percentiles in (
        ("sync x4, CONN_MAX_AGE=0", ("sync x4", "clientwindow", 0, False), ("p50", "p99")),
        ("sync x4, CONN_MAX_AGE=60", ("sync x4", "clientwindow", 60, False), ("p50", "p99")),
        ("sync x4, 60, +sequencer", ("sync x4", "clientwindow", 60, True), ("p99",)),
    ):
        for p in percentiles:
            record(
                Figure(
                    f"webhook {p} @{STEADY_RATE}/s, {name}",
                    results[key]["from_scheduled"][p],
                    "s",
                    inbox[p],
                    "HMAC+INSERT app",
                    reference if key[2] == 0 else "-",
                    0.010 if p == "p50" else 0.050,
                )
            )


# --------------------------------------------------------------------------- 2. capture


def capture_run(
    messages: int, per_delivery: int, conn_max_age: int, prefix: str, scratch: Callable[[], None]
) -> dict[str, Any]:
    deliveries = messages // per_delivery
    reset(scratch)
    postmaster = postmaster_pid()
    profile_to = Path(tempfile.mkstemp(suffix=".pyspy")[1]) if PYSPY else None
    config = load_config(
        "burst",
        0,
        count=deliveries,
        per_delivery=per_delivery,
        connections=CAPTURE_CONNECTIONS,
        prefix=prefix,
    )
    with gunicorn("clientwindow", "sync x4", conn_max_age) as (master, config["port"]):
        workers = children(master)
        web0, pg0 = sum(cpu_seconds(p) for p in workers), postgres_cpu(postmaster)
        scans0 = ledger_scans()
        sequencer = start_sequencer(deliveries, profile_to)
        time.sleep(1.0)  # let it import Django (py-spy, if any, attach) before the first POST
        load = start_load(config)
        deadline, done = time.time() + CAPTURE_DEADLINE, None
        while time.time() < deadline:
            if count("SELECT count(*) FROM messaging_deliveryseal") >= deliveries:
                done = time.time()
                break
            time.sleep(0.02)
        web_cpu = sum(cpu_seconds(p) for p in workers) - web0
        pg_cpu = postgres_cpu(postmaster) - pg0
        posted = json_result(load, timeout=60)
        sealed = json_result(sequencer, timeout=120)
    time.sleep(0.6)  # PostgreSQL publishes a backend's table statistics at most every 500 ms
    scans = [after - before for after, before in zip(ledger_scans(), scans0, strict=True)]
    assert done is not None, f"not all sealed after {CAPTURE_DEADLINE:.0f} s"
    assert posted["errors"] == 0, posted
    check = check_capture(deliveries, messages)
    entries = count("SELECT count(*) FROM archive_ledgerentry")
    groups = ledger_transactions()
    assert sum(len(g) for g in groups) == entries

    # Ceilings: the same facts, the same transactions, on an emptied ledger.
    connections.close_all()
    wipe_archive()
    started = time.perf_counter()
    for group in groups:
        ledger.append(group)
    appended = time.perf_counter() - started
    assert verify_ledger(contents=False).intact
    raw = raw_write(groups, scratch)
    wall = done - posted["first_post"]
    return {
        "messages": messages,
        "per_delivery": per_delivery,
        "conn_max_age": conn_max_age,
        "deliveries": deliveries,
        "wall": wall,
        "posting": posted["last_answer"] - posted["first_post"],
        "lag": done - posted["last_answer"],
        "post_latency": posted["latency"],
        "body_bytes": posted["body_bytes"],
        "entries": entries,
        "transactions": len(groups),
        "append": appended,
        "raw": raw,
        "sequencer": sealed,
        "sequencer_first": sealed["first_sealed"] - posted["first_post"],
        "web_cpu": web_cpu,
        "pg_cpu": pg_cpu,
        "scans": scans,
        "check": check,
        "profile": profile_to,
    }


def summarize_profile(path: Path, title: str) -> None:
    """py-spy's raw (collapsed) stacks: where the sequencer's time goes inside
    process_deliveries, inclusive and by own frame (waiting for PostgreSQL included)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        names = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].split("/")[-1] + ")"
            for f in frames
            if " (" in f
        ]
        top = next((i for i, n in enumerate(names) if n.startswith("process_deliveries ")), None)
        if top is None:
            continue
        names = names[top + 1 :]  # below process_deliveries (100% by construction)
        if not names:
            continue
        n = int(samples)
        total += n
        for name in set(names):
            inclusive[name] += n
        own[names[-1]] += n
    if not total:
        say(f"   (no samples in {path})")
        return
    say()
    say(f"== py-spy of the sequencer, {title}: {total:,} samples inside process_deliveries")
    rows = [[name, f"{100 * n / total:.1f}%"] for name, n in inclusive.most_common(28)]
    say(table(["function (file), inclusive", "share"], rows))
    rows = [[name, f"{100 * n / total:.1f}%"] for name, n in own.most_common(15)]
    say(table(["function (file), own frame", "share"], rows))


def test_capture(
    empty_ledger: None,
    inbox_table: None,
    scratch: Callable[[], None],
    server_settings: str,
) -> None:
    began = time.perf_counter()
    plans = [
        (CAPTURE_MESSAGES, 50, 0),
        (CAPTURE_MESSAGES, 100, 0),
        (SINGLE_DEPLOYED_MESSAGES, 1, 0),
        (SINGLE_MESSAGES, 1, 60),
    ]
    runs = []
    for number, (messages, per_delivery, conn_max_age) in enumerate(plans):
        run = capture_run(messages, per_delivery, conn_max_age, f"C{number}", scratch)
        runs.append(run)
        say(
            f"   {messages:,} messages, {per_delivery}/POST, CONN_MAX_AGE={conn_max_age}:"
            f" {rate(messages / run['wall'])} messages/s end to end; {run['check']}"
        )
        reset(scratch)
    rows, detail = [], []
    for run in runs:
        m, d, wall = run["messages"], run["deliveries"], run["wall"]
        ceiling = m / run["append"]
        name = f"{m:,} msgs, {run['per_delivery']}/POST, CONN_MAX_AGE={run['conn_max_age']}"
        rows.append(
            [
                name,
                f"{d:,}",
                seconds(wall),
                rate(m / wall),
                rate(d / wall),
                seconds(run["posting"]),
                rate(d / run["posting"]),
                seconds(run["lag"]),
                rate(ceiling),
                f"{m / wall / ceiling:.2f}",
                rate(m / run["raw"]),
            ]
        )
        seq = run["sequencer"]
        detail.append(
            [
                name,
                f"{run['body_bytes'] / 1024:,.1f} KiB",
                seconds(run["post_latency"]["p50"]),
                seconds(run["post_latency"]["p99"]),
                f"{run['entries']:,}",
                f"{run['transactions']:,}",
                f"{run['entries'] / run['transactions']:,.0f}",
                seconds(run["sequencer_first"]),
                f"{seq['busy']:,.1f} s",
                rate(m / seq["busy"]),
                f"{run['web_cpu'] / wall:.2f} / {seq.get('cpu', 0) / wall:.2f}"
                f" / {run['pg_cpu'] / wall:.2f}",
                f"{run['scans'][0]:,} / {run['scans'][1]:,} / {run['scans'][2]:,}",
            ]
        )
        record(
            Figure(
                f"capture {m:,} msgs, {run['per_delivery']}/POST, CMA {run['conn_max_age']}",
                m / wall,
                "messages/s",
                ceiling,
                "ledger.append same facts",
                "hash chain 100/txn: 19,300/s",
                1_000.0 if run["per_delivery"] > 1 else None,
            )
        )
    say()
    say(
        table(
            [
                "run",
                "deliveries",
                "first POST→all sealed",
                "messages/s",
                "deliveries/s",
                "POST phase",
                "POSTs/s",
                "sealing after last POST",
                "ceiling msgs/s",
                "ratio",
                "raw write msgs/s",
            ],
            rows,
            title="== end-to-end capture: gunicorn sync x4 (DEBUG off, DATABASE_CONN_MAX_AGE"
            " as named),"
            f" {CAPTURE_CONNECTIONS} client connections posting as fast as they can, one"
            f" sequencer process looping process_deliveries() ({server_settings})",
        )
    )
    say(
        "   ceiling = ledger.append of exactly the facts the run sealed (read back from the"
        " ledger), in the same transactions, on an emptied ledger, as messages/s; raw write ="
        " the same entry + content rows into plain tables (COPY), same transactions. Times from"
        " the first POST; 'sealing after last POST': from the last POST's answer to all sealed."
    )
    say()
    say(
        table(
            [
                "run",
                "body",
                "POST p50",
                "POST p99",
                "ledger entries",
                "transactions",
                "entries/txn",
                "1st sealing call at",
                "sequencer busy",
                "msgs/s while busy",
                "CPU web / seq / PG",
                "ledger seq scans / rows read / idx scans",
            ],
            detail,
            title="== capture detail",
        )
    )
    say(
        "   CPU: cores used on average over first POST→all sealed by the gunicorn workers, the"
        " sequencer process and all of PostgreSQL (2 cores on this machine). Ledger scans:"
        " pg_stat_user_tables for archive_ledgerentry over the run (the chain-check trigger reads"
        " the previous entry once per row; a sequential scan there makes sealing quadratic)."
        + (
            " Emptied tables were VACUUM ANALYZEd (BENCH_VACUUM_AFTER_WIPE)."
            if VACUUM_AFTER_WIPE
            else ""
        )
    )
    say(f"   capture benchmark took {time.perf_counter() - began:,.0f} s")
    for run in runs:
        statements = run["sequencer"].get("sql") or []
        if statements:
            busy = run["sequencer"]["busy"]
            say()
            say(
                table(
                    ["statement (ORM, IN lists collapsed)", "calls", "time", "of busy"],
                    [
                        [q[:110], f"{n:,}", seconds(t), f"{100 * t / busy:.1f}%"]
                        for q, n, t in statements
                    ],
                    title=f"== sequencer SQL, {run['messages']:,} msgs, {run['per_delivery']}/POST,"
                    f" CONN_MAX_AGE={run['conn_max_age']} (busy {seconds(busy)})",
                )
            )
        if run["profile"] is not None:
            summarize_profile(
                run["profile"],
                f"{run['messages']:,} msgs, {run['per_delivery']}/POST,"
                f" CONN_MAX_AGE={run['conn_max_age']}",
            )
            run["profile"].unlink()
