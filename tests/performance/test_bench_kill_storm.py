"""Kill storm: a crashed worker must not stop the archive (issue 13 §4).

The processes are the real ones, as deploy/ runs them, against this session's test database:
gunicorn (sync x4) serving /webhooks/whatsapp/, `manage.py qcluster` (Q_WORKERS=2, every
schedule on, the hourly and daily ones moved past the run) and `manage.py run_sequencer` (when
this tree has it; before issue 13 sealing rested on the qcluster alone). Loopback only.

Storm: BENCH_STORM_DELIVERIES (2,000) signed deliveries of two text messages each, posted at
BENCH_STORM_RATE (60/s) by 8 client threads, plus 10% of them posted again later (duplicates,
out of order) and 2% with a bad signature (answered 401, never stored). A POST that fails or
answers 5xx is retried up to 5 times, as Meta retries. While the storm lasts: a django-q2 worker
process is killed with SIGKILL every 2 s, a gunicorn worker every 5 s, and the sealer every 5 s
(started again 1 s later, as its systemd unit and `make run` do). Nothing is run by hand.

Asserted: pending deliveries reach zero within BENCH_STORM_DRAIN (60) s of the storm's end;
every acknowledged message is archived exactly once; the ledger verifies. Printed: the storm's
figures, the kills, pending over time, /readyz's answers (BACKLOG_ALARM_MINUTES=1 here, so the
backlog alarm fires if sealing stalls for a minute), and the time from the storm's end to zero.

On the code before issue 13 (no run_sequencer, sealing as django-q2 tasks) this fails: the
workers' shared queue lock, held by a killed worker, stops every task.

test_make_run_kill_storm is the same storm (BENCH_STORM_MAKE_RUN_DELIVERIES, 1,500) against a
real `scripts/localdev.py run` (what `make run` runs: its own PostgreSQL under a temporary var
directory, ports of its own): every 2 s one of the qcluster's processes is killed (sentinel,
pusher, monitor or a worker), every 15 s the qcluster's main process, every 5 s the sealer and a
gunicorn worker; make run starts each again. Then two SIGINTs to its process group must end
everything (PostgreSQL included) within 10 s, and a second run must start.

BENCH_STORM_SEALER_KILL=0 leaves the sealer alive (how far it keeps up during the storm);
BENCH_STORM_SEALER=0 runs without it (sealing by the qcluster's sweep alone).
"""

import contextlib
import http.client
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from archive.verify import verify_ledger
from messaging.models import Channel, Delivery, Message
from messaging.simulator import DEMO_CHANNEL
from scripts.localdev import group_members
from tests.conftest import wipe_archive
from tests.performance.bench_load import Client, build_bodies, sign
from tests.performance.conftest import say, table
from tests.performance.test_bench_bridge import empty_queue, minute_schedules_only
from tests.performance.test_bench_capture import (
    CHANNEL,
    ROOT,
    SECRET,
    WEBHOOK,
    app_env,
    children,
    free_port,
    get,
    gunicorn,
)

DELIVERIES = int(os.environ.get("BENCH_STORM_DELIVERIES", "2000"))
RATE = float(os.environ.get("BENCH_STORM_RATE", "60"))
DRAIN = float(os.environ.get("BENCH_STORM_DRAIN", "60"))
WITH_SEALER = os.environ.get("BENCH_STORM_SEALER", "1") not in ("", "0")
DUPLICATE_SHARE, BAD_SHARE = 0.10, 0.02
KILL_WORKER, KILL_WEB = 2.0, 5.0
KILL_SEALER = float(os.environ.get("BENCH_STORM_SEALER_KILL", "5"))  # 0: never
KILL_QCLUSTER = 15.0  # make run's qcluster itself (its main process), as in issue 13
SEALER_RESTART = 1.0
CLIENT_THREADS = 8
HAS_SEALER = (ROOT / "messaging/management/commands/run_sequencer.py").exists()
READY = re.compile(r"ready for work at (\d+)")
WAMID_KEY = re.compile(r"storm\d{10}")  # bench_load.build_bodies: prefix + message number


@dataclass
class Storm:
    """What the load thread posted and what it was answered."""

    statuses: Counter[int] = field(default_factory=Counter)
    acknowledged: set[int] = field(default_factory=set)  # indexes of bodies answered 200
    retries: int = 0
    started: float = 0.0
    ended: float = 0.0


def plan(count: int) -> list[tuple[int, bool]]:
    """(body index, good signature): every body once, some again later, a few badly signed."""
    rng = random.Random(13)
    order = [(i, True) for i in range(count)]
    for i in rng.sample(range(count), int(count * DUPLICATE_SHARE)):
        order.insert(min(len(order), i + rng.randrange(20, 400)), (i, True))
    for i in rng.sample(range(count), int(count * BAD_SHARE)):
        order.insert(rng.randrange(len(order)), (i, False))
    return order


def post_storm(port: int, bodies: list[bytes], storm: Storm, secret: str = SECRET) -> None:
    jobs: queue.Queue[tuple[int, bool] | None] = queue.Queue()
    lock = threading.Lock()

    def work() -> None:
        client = Client("127.0.0.1", port, WEBHOOK, secret)
        while (job := jobs.get()) is not None:
            index, good = job
            signature = sign(bodies[index], secret if good else "not-the-secret")
            for attempt in range(6):
                try:
                    status = client.post(bodies[index], signature)
                except (OSError, http.client.HTTPException):  # a worker killed mid-answer
                    status, client.conn = 0, None
                if status in (200, 401) or attempt == 5:
                    break
                with lock:
                    storm.retries += 1
                time.sleep(0.2)
            with lock:
                storm.statuses[status] += 1
                if status == 200 and good:
                    storm.acknowledged.add(index)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    storm.started = time.monotonic()
    for n, job in enumerate(plan(len(bodies))):
        delay = storm.started + n / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        jobs.put(job)
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join()
    storm.ended = time.monotonic()


@dataclass
class Processes:
    """The qcluster and the sealer, with what the storm did to them."""

    env: dict[str, str]
    qcluster: subprocess.Popen[bytes]
    qlog: Path
    slog: Path
    sealer: subprocess.Popen[bytes] | None = None
    sealer_due: float = 0.0
    kills: Counter[str] = field(default_factory=Counter)
    sealer_starts: int = 0

    def start_sealer(self) -> None:
        with self.slog.open("ab") as out:
            self.sealer = subprocess.Popen(
                [sys.executable, "manage.py", "run_sequencer"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.sealer_starts += 1

    def sealer_listened(self) -> int:
        """How many of its starts got as far as listening (the rest died starting up)."""
        return (
            self.slog.read_text(errors="replace").count("listening on") if self.slog.exists() else 0
        )

    def tend_sealer(self) -> None:
        """As systemd's Restart=always: start it again a second after it died."""
        if self.sealer is None or self.sealer.poll() is None:
            return
        if not self.sealer_due:
            self.sealer_due = time.monotonic() + SEALER_RESTART
        elif time.monotonic() >= self.sealer_due:
            self.sealer_due = 0.0
            self.start_sealer()

    def kill_worker(self) -> None:
        """SIGKILL one live django-q2 worker (not the sentinel, pusher or monitor)."""
        live = [
            pid
            for pid in map(int, READY.findall(self.qlog.read_text(errors="replace")))
            if alive_in_group(pid, self.qcluster.pid)
        ]
        if live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(random.choice(live), signal.SIGKILL)
                self.kills["django-q2 worker"] += 1

    def kill_sealer(self) -> None:
        if self.sealer is not None and self.sealer.poll() is None:
            self.sealer.kill()
            self.kills["sealer"] += 1


def alive_in_group(pid: int, pgid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0] != "Z" and int(fields[2]) == pgid


@contextlib.contextmanager
def background(env: dict[str, str]) -> Iterator[Processes]:
    with tempfile.TemporaryDirectory() as scratch:
        qlog = Path(scratch) / "qcluster.log"
        with qlog.open("ab") as out:
            qcluster = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        found = Processes(env, qcluster, qlog, Path(scratch) / "sealer.log")
        try:
            deadline = time.monotonic() + 60
            while len(READY.findall(qlog.read_text(errors="replace"))) < 2:
                assert qcluster.poll() is None, qlog.read_text()[-3000:]
                assert time.monotonic() < deadline, qlog.read_text()[-3000:]
                time.sleep(0.1)
            if WITH_SEALER and HAS_SEALER:
                found.start_sealer()
            yield found
        finally:
            for process in (qcluster, found.sealer):
                if process is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def sparse(samples: list[tuple[float, int]], every: float = 5.0) -> str:
    """Samples about `every` seconds apart, and the last one."""
    shown, last = [], -every
    for n, (at, count) in enumerate(samples):
        if at - last >= every or n == len(samples) - 1:
            shown.append(f"{at:.0f}:{count:,}")
            last = at
    return " ".join(shown)


def pending() -> int:
    return Delivery.objects.filter(seal__isnull=True).count()


def test_kill_storm(empty_ledger: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLOG_ALARM_MINUTES", "1")
    wipe_archive()
    empty_queue()
    Channel.objects.create(**CHANNEL)
    config = {**CHANNEL, "prefix": "storm", "count": DELIVERIES, "per_delivery": 2, "seed": 13}
    bodies = build_bodies(config)
    env = {**app_env(60), "Q_WORKERS": "2", "Q_POLL": "0.2"}
    sealing = "run_sequencer" if WITH_SEALER and HAS_SEALER else "django-q2 tasks only"
    say(f"== kill storm: {DELIVERIES:,} deliveries at {RATE:.0f}/s; sealing by {sealing}")
    storm, timeline, ready = Storm(), [], Counter()
    with (
        minute_schedules_only(),
        gunicorn("clientwindow", "sync x4", 60) as (master, port),
        background(env) as procs,
    ):
        load = threading.Thread(target=post_storm, args=(port, bodies, storm), daemon=True)
        load.start()
        began = time.monotonic()
        due = {"worker": began + KILL_WORKER, "web": began + KILL_WEB, "sealer": began + 2.5}
        during, sampled = [], 0.0
        while load.is_alive():
            now = time.monotonic()
            if now >= sampled + 5:
                during.append((now - began, pending()))
                sampled = now
            if now >= due["worker"]:
                procs.kill_worker()
                due["worker"] += KILL_WORKER
            if now >= due["web"] and (workers := children(master)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(random.choice(workers), signal.SIGKILL)
                    procs.kills["gunicorn worker"] += 1
                due["web"] += KILL_WEB
            if KILL_SEALER and now >= due["sealer"]:
                procs.kill_sealer()
                due["sealer"] += KILL_SEALER
            procs.tend_sealer()
            time.sleep(0.1)
        at_end, zero_after = pending(), None
        deadline = storm.ended + DRAIN
        while time.monotonic() < deadline:
            procs.tend_sealer()
            left = pending()
            timeline.append((time.monotonic() - storm.ended, left))
            ready[get(port, "/readyz")] += 1
            if left == 0:
                zero_after = time.monotonic() - storm.ended
                break
            time.sleep(1.0)
        qcluster_alive = procs.qcluster.poll() is None
        listened = procs.sealer_listened()
        sealer_tracebacks = procs.slog.exists() and "Traceback" in procs.slog.read_text()

    posted = sum(storm.statuses.values())
    acknowledged = {f"storm{n:010d}" for i in storm.acknowledged for n in (2 * i, 2 * i + 1)}
    archived = Counter(
        match.group()
        for wamid in Message.objects.values_list("wamid", flat=True)
        if (match := WAMID_KEY.search(wamid))
    )
    found = acknowledged & archived.keys()
    rows = [
        ["storm", f"{storm.ended - storm.started:,.1f} s"],
        ["POSTs (retries included once)", f"{posted:,}"],
        ["answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(storm.statuses.items()))],
        ["retries (5xx or cut connection)", f"{storm.retries:,}"],
        ["kills", ", ".join(f"{k}: {v}" for k, v in sorted(procs.kills.items())) or "-"],
        ["sealer starts (listening before killed)", f"{procs.sealer_starts} ({listened})"],
        ["sealer logged a traceback", str(sealer_tracebacks)],
        ["pending during the storm (s: n)", sparse(during)],
        ["pending at the storm's end", f"{at_end:,}"],
        ["pending after the end (s: n)", sparse(timeline)],
        ["/readyz answers after the storm", ", ".join(f"{k}: {v}" for k, v in ready.items())],
        ["qcluster main process alive", str(qcluster_alive)],
        ["pending reached zero", f"{zero_after:.1f} s after the end" if zero_after else "NO"],
        ["acknowledged messages archived", f"{len(found):,} of {len(acknowledged):,}"],
        ["archived more than once", str(sum(1 for c in archived.values() if c > 1))],
    ]
    say(table(["figure", "value"], rows, title="== kill storm"))
    assert zero_after is not None, f"{pending():,} deliveries still pending {DRAIN:.0f} s after"
    assert found == acknowledged
    assert all(count == 1 for count in archived.values())
    assert verify_ledger().intact


# --------------------------------------------------------------------------- `make run`

MAKE_RUN_DELIVERIES = int(os.environ.get("BENCH_STORM_MAKE_RUN_DELIVERIES", "1500"))
PENDING_SQL = (
    "SELECT count(*) FROM messaging_delivery d"
    " WHERE NOT EXISTS (SELECT 1 FROM messaging_deliveryseal s WHERE s.delivery_id = d.id)"
)


@dataclass
class MakeRun:
    """`scripts/localdev.py run` (what `make run` runs) on a var directory and ports of its own."""

    var: Path
    port: int
    pg_port: int
    process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        kept = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
        return {
            **kept,
            "CLIENTWINDOW_VAR_DIR": str(self.var),
            "PORT": str(self.port),
            "CLIENTWINDOW_PG_PORT": str(self.pg_port),
            "MAIL_GATEWAY_PORT": str(free_port()),
            "BACKLOG_ALARM_MINUTES": "1",
        }

    def start(self, log: Path, seconds: float = 300) -> float:
        """Start it in a session of its own (as a terminal's job); seconds until it is ready."""
        began = time.monotonic()
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "scripts/localdev.py", "run"],
                cwd=ROOT,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        mark = log.read_text(errors="replace").count("the portal is at")
        while log.read_text(errors="replace").count("the portal is at") == mark:
            assert self.process.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() - began < seconds, "make run did not start"
            time.sleep(0.5)
        return time.monotonic() - began

    def groups(self) -> list[int]:
        return list(json.loads((self.var / "localdev.json").read_text())["groups"])

    def leader(self, name: str) -> int:
        return int(json.loads((self.var / "localdev.json").read_text())["children"][name])

    def sql(self, query: str) -> int:
        with psycopg.connect(
            host=str(self.var / "pg" / "run"),
            port=self.pg_port,
            user="postgres",
            dbname="clientwindow",
            autocommit=True,
        ) as conn:
            return int(conn.execute(query).fetchone()[0])

    def verify_archive(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "verify_archive"],
            cwd=ROOT,
            env={**self.env(), "CLIENTWINDOW_LOCAL": "1"},
            capture_output=True,
            text=True,
            check=False,
        )

    def postmaster_running(self) -> bool:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.var / "pg" / "data" / "postmaster.pid").read_text().split()[0])
            stat = Path(f"/proc/{pid}/stat").read_text()
            return stat[stat.rfind(")") + 2] != "Z"
        return False

    def stop_twice(self) -> tuple[float, list[int]]:
        """Two SIGINTs to its process group, as two Ctrl-C: seconds until all is gone, and
        whatever is left after 10 s."""
        assert self.process is not None
        groups = self.groups()
        began = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        time.sleep(0.3)
        os.killpg(self.process.pid, signal.SIGINT)
        while time.monotonic() - began < 10:
            left = [p for g in groups for p in group_members(g)]
            if self.process.poll() is not None and not left and not self.postmaster_running():
                return time.monotonic() - began, []
            time.sleep(0.1)
        return time.monotonic() - began, left


def test_make_run_kill_storm() -> None:
    """The issue's "Must show": `make run` under a storm with worker processes killed every
    2 s reaches zero pending with no manual command within a minute of the storm's end; then
    two Ctrl-C stop everything within 10 s and the next `make run` starts."""
    var = Path(tempfile.mkdtemp(prefix="cw-makerun-"))
    var.chmod(0o755)  # PostgreSQL's account must reach var/pg when this runs as root
    run, log = MakeRun(var, free_port(), free_port()), var / "make-run.log"
    try:
        first_start = run.start(log)
        secret = (var / "whatsapp-app-secret").read_text().strip()
        config = {**DEMO_CHANNEL, "prefix": "storm", "count": MAKE_RUN_DELIVERIES}
        bodies = build_bodies({**config, "per_delivery": 2, "seed": 13})
        storm, kills, timeline = Storm(), Counter(), []
        load = threading.Thread(
            target=post_storm, args=(run.port, bodies, storm, secret), daemon=True
        )
        load.start()
        began = time.monotonic()
        due = {
            "qcluster process": began + KILL_WORKER,
            "qcluster main": began + KILL_QCLUSTER,
            "sealer": began + 2.5,
            "gunicorn worker": began + KILL_WEB,
        }
        while load.is_alive():
            now = time.monotonic()
            for name, child, every, leader in (
                ("qcluster process", "worker", KILL_WORKER, False),  # sentinel, pusher, workers…
                ("qcluster main", "worker", KILL_QCLUSTER, True),
                ("sealer", "sealer", KILL_SEALER, True),
                ("gunicorn worker", "web server", KILL_WEB, False),
            ):
                if not every or now < due[name]:
                    continue
                due[name] += every
                with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
                    pid = run.leader(child)
                    others = [p for p in group_members(pid) if p != pid]
                    victim = pid if leader else random.choice(others or [0])
                    if victim:
                        os.kill(victim, signal.SIGKILL)
                        kills[name] += 1
            time.sleep(0.1)
        at_end, zero_after = run.sql(PENDING_SQL), None
        while time.monotonic() < storm.ended + DRAIN:
            left = run.sql(PENDING_SQL)
            timeline.append((time.monotonic() - storm.ended, left))
            if left == 0:
                zero_after = time.monotonic() - storm.ended
                break
            time.sleep(1.0)
        archived = run.sql("SELECT count(*) FROM messaging_message WHERE wamid LIKE '%storm%'")
        doubled = run.sql(
            "SELECT count(*) FROM (SELECT wamid FROM messaging_message GROUP BY channel_id, wamid"
            " HAVING count(*) > 1) d"
        )
        verified = run.verify_archive()
        restarts = log.read_text(errors="replace").count("starting it again")
        stopped_in, left = run.stop_twice()
        second_start = run.start(var / "make-run-2.log")
        assert run.process is not None
        run.process.send_signal(signal.SIGTERM)
        second_stop = run.process.wait(timeout=30)
    finally:
        if run.process is not None and run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
    acknowledged = 2 * len(storm.acknowledged)
    rows = [
        ["first start (initdb, migrate, seed)", f"{first_start:,.1f} s"],
        ["storm", f"{storm.ended - storm.started:,.1f} s, {sum(storm.statuses.values()):,} POSTs"],
        ["answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(storm.statuses.items()))],
        ["retries (5xx or cut connection)", f"{storm.retries:,}"],
        ["kills", ", ".join(f"{k}: {v}" for k, v in sorted(kills.items()))],
        ["children started again by make run", str(restarts)],
        ["pending at the storm's end", f"{at_end:,}"],
        ["pending after the end (s: n)", sparse(timeline)],
        ["pending reached zero", f"{zero_after:.1f} s after the end" if zero_after else "NO"],
        ["storm messages archived / acknowledged", f"{archived:,} / {acknowledged:,}"],
        ["messages archived twice", str(doubled)],
        ["verify_archive", f"exit {verified.returncode}"],
        [
            "two Ctrl-C: everything gone after",
            f"{stopped_in:.1f} s" + (f", left {left}" if left else ""),
        ],
        ["second make run ready after", f"{second_start:,.1f} s (exit {second_stop} on SIGTERM)"],
    ]
    say(table(["figure", "value"], rows, title="== make run under a kill storm"))
    assert zero_after is not None, "pending never reached zero"
    assert archived >= acknowledged and doubled == 0
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    assert not left and stopped_in < 10
    assert second_stop == 0
    shutil.rmtree(var, ignore_errors=True)
