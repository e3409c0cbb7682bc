"""Bridge benchmark: from the webhook's answer to the staff notification accepted by SMTP.

The bridge issue's speed target: from the webhook's answer to the notification accepted by the
SMTP server, p95 <= 2 s at 50 messages/s. Measured here, never as a timed test: nothing asserts
on speed; correctness is asserted after every run.

Every part is the real one, as deployed: the app under gunicorn (sync x4, as deploy/ runs it,
started by tests/performance/test_bench_capture.py's helper) serving /webhooks/whatsapp/ against
this session's test database, with CLIENTWINDOW_DEBUG=0 and DATABASE_CONN_MAX_AGE=60
(deploy/env.example); a real `python manage.py qcluster` process (django-q2 on the ORM broker,
Q_WORKERS=2, Q_POLL as named per run) with the same database environment, and beside it
`manage.py run_sequencer`, which seals as the webhook NOTIFYs it (its CPU is not in the qcluster's
figures); the qcluster's tasks are the wake-ups the app queues (the bridge after every sealed
batch, as messaging/inbox.py queues and coalesces them; the every-minute schedules stay on as
backstops, the hourly and daily ones are moved past the run); and a real SMTP server on loopback
in this process (aiosmtpd), named by EMAIL_URL and JOURNAL_EMAIL_URL, which records the time it
accepts each message. Before each run: an empty archive (tests.conftest.wipe_archive()), an
empty queue (no wake-up marked waiting either), the channel, and its Route with two email
recipients and a journal address (journal copies are extra SMTP traffic, as in production).

Load: an open-loop sender in a separate process (tests/performance/bench_bridge_load.py), one
signed text message per POST at BENCH_BRIDGE_RATE messages/s for BENCH_BRIDGE_SECONDS (after
2 s of warm-up sent the same way and left out of the figures); each text carries a unique token
("bench-000123") that is looked for in every email accepted. A message's latency runs from its
own POST's answer to the accept of the staff email carrying it (one email can carry several
messages of one client's burst). Runs: each Q_POLL of BENCH_BRIDGE_POLLS with a new client per
message (no bursts), and each of BENCH_BRIDGE_REPEAT_POLLS with 10% of the messages from 5
repeating clients. After the load, the run waits until every message's notification and journal
copy have been accepted and every notification is committed as sent (or BENCH_BRIDGE_DRAIN
seconds).

Breakdown, from the same answer: sealed (the ledger entry's sealed_at, read under the append
lock), planned (the notification's created_at: the start of the bridge's planning transaction; a
message that joined a waiting notification counts from its own seal), sent (the notification's
sent_at, stamped after the SMTP server's 250, so it follows the accept) and accepted. Also: the
django-q2 tasks the run executed (from enqueue to done, read from django_q_task every 0.5 s, as
save_limit prunes it), the queue's depth, and the CPU of each process group.

Once 1,000 notifications are pending, the plan of send_due()'s query for the next due
notification (EXPLAIN ANALYZE, rolled back) is taken and printed: it runs once per notification.

Idle cost of the poll: after each run, with everything sent and the queue empty (the wake-ups
left over run first), the qcluster process group's CPU (by process: pusher, monitor, the rest)
and all of PostgreSQL's over BENCH_BRIDGE_IDLE_SECONDS, and the tasks that ran meanwhile (the
minute schedules).

Ceiling, same run: after the qcluster is stopped, BENCH_BRIDGE_CEILING messages one at a time,
each POSTed to the same gunicorn, then sealed and dispatched inline in this process
(process_deliveries(), bridge.dispatch.run()) to the same SMTP server: the work without the
queue.

Correctness after each run: every POST answered 200; every message sealed, in exactly one staff
email and exactly one journal copy; every notification "sent"; verify_ledger() intact; no
traceback in the worker's or gunicorn's log.

Environment: BENCH_BRIDGE_SECONDS (60), BENCH_BRIDGE_RATE (50), BENCH_BRIDGE_POLLS ("1,0.2,0.1"),
BENCH_BRIDGE_REPEAT_POLLS ("1"; "" for none), BENCH_BRIDGE_WORKERS (2), BENCH_BRIDGE_IDLE_SECONDS
(30), BENCH_BRIDGE_DRAIN (600), BENCH_BRIDGE_CEILING (30), BENCH_BRIDGE_PYSPY=1 to profile the
qcluster processes with py-spy (on PATH, in ~/.local/bin or in BENCH_PYSPY_DIR) and print where
the workers' time goes, BENCH_BRIDGE_LOG_DIR to keep each run's qcluster log there,
BENCH_BRIDGE_SEAL_LIMIT=N for what-if runs (labelled so) whose worker seals at most N deliveries
per wake-up instead of looping until the inbox is empty (tests/performance/bench_bridge_qcluster.py
patches the task in the worker process; the product is unchanged).
"""

import collections
import contextlib
import email
import email.policy
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from django.db import connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule

from archive.verify import verify_ledger
from bridge import dispatch
from bridge.models import Notification, NotificationMessage, Route
from messaging.models import Channel, Delivery, DeliverySeal, Message
from messaging.sequencer import process_deliveries
from tests.conftest import superuser_connect, wipe_archive
from tests.performance.bench_bridge_load import text_body
from tests.performance.bench_load import sign
from tests.performance.conftest import Figure, record, say, seconds, table
from tests.performance.test_bench_capture import (
    CHANNEL,
    ROOT,
    SECRET,
    WEBHOOK,
    app_env,
    children,
    cpu_seconds,
    free_port,
    gunicorn,
    postgres_cpu,
    postmaster_pid,
    proc_stat,
)

RATE = float(os.environ.get("BENCH_BRIDGE_RATE", "50"))
SECONDS = float(os.environ.get("BENCH_BRIDGE_SECONDS", "60"))
WARMUP = 2.0
POLLS = [p for p in os.environ.get("BENCH_BRIDGE_POLLS", "1,0.2,0.1").split(",") if p]
REPEAT_POLLS = [p for p in os.environ.get("BENCH_BRIDGE_REPEAT_POLLS", "1").split(",") if p]
WORKERS = int(os.environ.get("BENCH_BRIDGE_WORKERS", "2"))
IDLE_SECONDS = float(os.environ.get("BENCH_BRIDGE_IDLE_SECONDS", "30"))
DRAIN_SECONDS = float(os.environ.get("BENCH_BRIDGE_DRAIN", "600"))
CEILING_MESSAGES = int(os.environ.get("BENCH_BRIDGE_CEILING", "30"))
PYSPY = os.environ.get("BENCH_BRIDGE_PYSPY", "") not in ("", "0")
LOG_DIR = os.environ.get("BENCH_BRIDGE_LOG_DIR", "")
SEAL_LIMIT = int(os.environ.get("BENCH_BRIDGE_SEAL_LIMIT", "0"))
PICK_BACKLOG = 1000  # the pick's plan is taken once this many notifications are pending
QUIET_SECONDS = 300.0  # at most this long for the queue to empty before the idle measurement
TARGET = 2.0
CONN_MAX_AGE = 60  # deploy/env.example
CLIENT_THREADS = 8
REPEAT_SHARE, REPEAT_CLIENTS = 0.10, 5
RECIPIENTS = ["rm@bank.example", "desk@bank.example"]
JOURNAL = "journal@archive.bank.example"
FROM_ADDRESS = "clientwindow@bank.example"
PORTAL = "https://archive.bank.example"
TOKEN = re.compile(r"(?:bench|ceil)-\d{6}")
LOAD = "tests.performance.bench_bridge_load"


# --------------------------------------------------------------------------- SMTP server


@dataclass
class Accepted:
    at: float  # time.time() when the server took the DATA, before it answers 250
    rcpt_tos: list[str]
    raw: bytes
    peer: str

    @property
    def journal(self) -> bool:
        return self.rcpt_tos == [JOURNAL]

    def tokens(self) -> set[str]:
        """The message tokens in its text parts (text and HTML alike, decoded)."""
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        found: set[str] = set()
        for part in parsed.walk():
            if part.get_content_maintype() == "text":
                found.update(TOKEN.findall(part.get_content()))  # type: ignore[attr-defined]
        return found


@dataclass
class Mailbox:
    """What the SMTP server accepted, with the time of each accept; parsed as it goes."""

    accepted: list[Accepted] = field(default_factory=list)
    parsed: int = 0
    staff: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    journal: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    staff_emails: int = 0
    journal_emails: int = 0
    largest: int = 0  # most messages one staff email carried

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.time()
        self.accepted.append(
            Accepted(at, list(envelope.rcpt_tos), envelope.original_content, str(session.peer))
        )
        return "250 OK"

    def parse(self) -> None:
        """Index the emails accepted since the last call: token → accept times."""
        while self.parsed < len(self.accepted):
            item = self.accepted[self.parsed]
            self.parsed += 1
            found = item.tokens()
            if item.journal:
                self.journal_emails += 1
            else:
                assert sorted(item.rcpt_tos) == sorted(RECIPIENTS), item.rcpt_tos
                self.staff_emails += 1
                self.largest = max(self.largest, len(found))
            for token in found:
                (self.journal if item.journal else self.staff)[token].append(item.at)

    def sessions(self) -> int:
        return len({a.peer for a in self.accepted})


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()  # aiosmtpd's Controller cannot start on port 0
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


# --------------------------------------------------------------------------- processes


def worker_env(poll: str, smtp_port: int) -> dict[str, str]:
    url = f"smtp://127.0.0.1:{smtp_port}"
    return {
        **app_env(CONN_MAX_AGE),
        "Q_POLL": poll,
        "Q_WORKERS": str(WORKERS),
        "EMAIL_URL": url,
        "JOURNAL_EMAIL_URL": url,
        "BRIDGE_FROM_ADDRESS": FROM_ADDRESS,
        "PORTAL_URL": PORTAL,
    }


def group(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and int(stat[2]) == pgid:
                found.append(int(entry.name))
    return found


def group_cpu(pgid: int) -> float:
    """CPU seconds of a process group: its live processes and the children they reaped."""
    return sum(cpu_seconds(pid, reaped=True) for pid in group(pgid))


@dataclass
class Cluster:
    pid: int  # the `manage.py qcluster` process, leader of its process group
    log: Path

    def cpu(self) -> dict[str, float]:
        """CPU seconds by role: the pusher (it polls the broker), the monitor (it saves each
        result), and the rest (the workers, recycled ones included, the sentinel, the main)."""
        text = self.log.read_text(errors="replace")
        pids = {
            role: [int(p) for p in re.findall(rf"{marker} at (\d+)", text)]
            for role, marker in (("pusher", "pushing tasks"), ("monitor", "monitoring"))
        }
        found = {role: sum(cpu_seconds(p) for p in found) for role, found in pids.items()}
        found["total"] = group_cpu(self.pid)
        found["workers etc."] = found["total"] - found["pusher"] - found["monitor"]
        return found


@contextlib.contextmanager
def qcluster(env: dict[str, str], name: str) -> Iterator[Cluster]:
    """`manage.py qcluster` in a session of its own (its pid is its process group)."""
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "qcluster.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"]
                if not SEAL_LIMIT
                else [
                    sys.executable,
                    "-m",
                    "tests.performance.bench_bridge_qcluster",
                    str(SEAL_LIMIT),
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            # sealing is the sealer's since issue 13 (messaging/sealer.py), not a qcluster task
            sealer = subprocess.Popen(
                [sys.executable, "manage.py", "run_sequencer"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            while log.read_text(errors="replace").count("ready for work") < WORKERS:
                assert process.poll() is None, f"qcluster exited: {log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"qcluster not up: {log.read_text()[-3000:]}"
                time.sleep(0.1)
            yield Cluster(process.pid, log)
        finally:
            sealer.terminate()
            sealer.wait(timeout=40)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            logged = log.read_text(errors="replace")
            if LOG_DIR:
                Path(LOG_DIR).mkdir(parents=True, exist_ok=True)
                shutil.copy(log, Path(LOG_DIR) / f"qcluster-{name}.log")
    assert "Traceback" not in logged, f"qcluster logged a traceback:\n{logged[-4000:]}"
    assert "Failed '" not in logged, f"a task failed:\n{logged[-4000:]}"


def pyspy() -> str | None:
    extra = os.environ.get("BENCH_PYSPY_DIR", "")
    candidates = [Path.home() / ".local/bin/py-spy"]
    if extra:
        candidates = [Path(extra) / "bin/py-spy", Path(extra) / "py-spy", *candidates]
    return shutil.which("py-spy") or next((str(p) for p in candidates if p.exists()), None)


def start_pyspy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    spy = pyspy()
    assert spy, "BENCH_BRIDGE_PYSPY=1 needs py-spy (pip install --target DIR py-spy)"
    command = [spy, "record", "--subprocesses", "--idle", "--format", "raw", "--rate", "100"]
    command += ["--pid", str(pid), "-o", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def start_load(port: int, prefix: str, repeat: bool, out: Path) -> subprocess.Popen[bytes]:
    config = {
        "out": str(out),
        "host": "127.0.0.1",
        "port": port,
        "path": WEBHOOK,
        "secret": SECRET,
        "phone_number_id": CHANNEL["phone_number_id"],
        "display_number": CHANNEL["display_number"],
        "waba_id": CHANNEL["waba_id"],
        "rate": RATE,
        "seconds": SECONDS,
        "warmup": WARMUP,
        "prefix": prefix,
        "connections": CLIENT_THREADS,
        "repeat_share": REPEAT_SHARE if repeat else 0,
        "repeat_clients": REPEAT_CLIENTS,
    }
    with out.with_suffix(".err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", LOAD, json.dumps(config)], cwd=ROOT, stdout=err, stderr=err
        )


# --------------------------------------------------------------------------- database


def reset() -> None:
    """An empty archive and queue, then the channel and its route (two recipients, a journal)."""
    connections.close_all()
    wipe_archive()
    empty_queue()
    channel = Channel.objects.create(**CHANNEL)
    Route.objects.create(
        channel=channel, name="Bench desk", email_recipients=RECIPIENTS, journal_address=JOURNAL
    )


def empty_queue() -> None:
    """No queued or recorded tasks, and no wake-up marked as waiting (messaging_wakeup, where
    wake-ups are coalesced: a mark left by a stopped worker would hold every wake-up back)."""
    with superuser_connect() as conn:
        conn.execute("TRUNCATE django_q_ormq, django_q_task")
        if conn.execute("SELECT to_regclass('messaging_wakeup')").fetchone()[0]:
            conn.execute("TRUNCATE messaging_wakeup")


@contextlib.contextmanager
def minute_schedules_only() -> Iterator[None]:
    """Hourly and daily schedules moved past the runs (restored after): each run's worker starts
    with the same backstops due, instead of the first run alone verifying the whole archive."""
    saved = dict(Schedule.objects.values_list("pk", "next_run"))
    later = timezone.now() + timedelta(days=1)
    Schedule.objects.exclude(schedule_type=Schedule.MINUTES).update(next_run=later)
    try:
        yield
    finally:
        for pk, next_run in saved.items():
            Schedule.objects.filter(pk=pk).update(next_run=next_run)


def count(query: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(query)
        return int(cursor.fetchone()[0])


@dataclass
class Sampler:
    """The queue's depth and the django-q2 tasks done, read every half second."""

    depth: list[tuple[float, int]] = field(default_factory=list)
    tasks: dict[str, tuple[str, float, float]] = field(default_factory=dict)

    def sample(self) -> None:
        self.depth.append((time.time(), count("SELECT count(*) FROM django_q_ormq")))
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, func, started, stopped FROM django_q_task")
            for task_id, func, started, stopped in cursor.fetchall():
                self.tasks[task_id] = (func, started.timestamp(), stopped.timestamp())

    def between(self, start: float, end: float) -> list[tuple[str, float, float]]:
        return [t for t in self.tasks.values() if start <= t[2] <= end]


def explain_pick(backlog: int) -> str:
    """Once `backlog` notifications are pending: EXPLAIN ANALYZE of send_due()'s query for the
    next due notification (bridge/dispatch.py), run as it runs (FOR UPDATE SKIP LOCKED, in a
    transaction, rolled back). "" while fewer are pending."""
    if Notification.objects.filter(state=Notification.State.PENDING).count() < backlog:
        return ""
    with transaction.atomic():
        plan = (
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=Notification.State.PENDING, due_at__lte=timezone.now())
            .select_related("route", "conversation__channel", "conversation__participant")
            .order_by("due_at", "id")[:1]
            .explain(analyze=True, buffers=True)
        )
        pending = Notification.objects.filter(state=Notification.State.PENDING).count()
        transaction.set_rollback(True)
    return f"{pending:,} pending notifications\n{plan}"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def spread(values: list[float]) -> dict[str, float]:
    return {name: pct(values, p) for name, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))} | {
        "max": max(values) if values else float("nan")
    }


def shown(value: float) -> str:
    return "-" if value != value else seconds(value)


def load_average() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


# --------------------------------------------------------------------------- one run


def bridge_run(poll: str, repeat: bool, number: int) -> dict[str, Any]:
    reset()
    postmaster = postmaster_pid()
    label = (
        ("what-if: seal task bounded, " if SEAL_LIMIT else "")
        + f"Q_POLL={poll}, "
        + (
            f"{REPEAT_SHARE:.0%} from {REPEAT_CLIENTS} repeating clients"
            if repeat
            else "a new client per message"
        )
    )
    say(f"== run {number}: {label}; load average {load_average()}")
    load_before = os.getloadavg()
    sampler = Sampler()
    profile = Path(tempfile.mkstemp(suffix=".pyspy")[1]) if PYSPY else None
    with (
        tempfile.TemporaryDirectory() as scratch,
        smtp_server() as (box, smtp_port),
        gunicorn("clientwindow", "sync x4", CONN_MAX_AGE) as (master, port),
    ):
        with qcluster(worker_env(poll, smtp_port), f"run{number}") as cluster:
            time.sleep(1.0)
            spy = start_pyspy(cluster.pid, profile) if profile is not None else None
            workers = children(master)
            web0, q0, pg0 = (
                sum(cpu_seconds(p) for p in workers),
                cluster.cpu(),
                postgres_cpu(postmaster),
            )
            me0, began = time.process_time(), time.time()
            results = Path(scratch) / "load.json"
            load = start_load(port, f"B{number}", repeat, results)
            load_deadline = time.time() + WARMUP + SECONDS + 120
            pick_plan = ""
            try:
                while load.poll() is None:
                    assert time.time() < load_deadline, "the load process did not finish"
                    sampler.sample()
                    box.parse()
                    pick_plan = pick_plan or explain_pick(PICK_BACKLOG)
                    time.sleep(0.5)
            finally:
                if load.poll() is None:
                    load.kill()
                    load.wait()
            errors = results.with_suffix(".err").read_text(errors="replace")
            assert load.returncode == 0, errors[-2000:]
            posted = json.loads(results.read_text())
            answered = {r[0]: r for r in posted["messages"] if r[6] == 200}
            deadline = time.time() + DRAIN_SECONDS
            drained = None
            while time.time() < deadline:
                sampler.sample()
                box.parse()
                pick_plan = pick_plan or explain_pick(PICK_BACKLOG)
                if (
                    answered.keys() <= box.staff.keys()
                    and answered.keys() <= box.journal.keys()
                    and not Notification.objects.exclude(state=Notification.State.SENT).exists()
                ):
                    drained = time.time()
                    break
                time.sleep(0.5)
            ended = time.time()
            pick_plan = pick_plan or f"(never {PICK_BACKLOG:,} notifications pending)"
            q1 = cluster.cpu()
            busy = {
                "web": (sum(cpu_seconds(p) for p in workers) - web0) / (ended - began),
                "worker": (q1["total"] - q0["total"]) / (ended - began),
                "pg": (postgres_cpu(postmaster) - pg0) / (ended - began),
                "bench": (time.process_time() - me0) / (ended - began),
                "roles": {k: (v - q0[k]) / (ended - began) for k, v in q1.items()},
            }
            load_after = os.getloadavg()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            # Idle: everything sent and the queue empty (the wake-ups left over run first); what
            # the worker costs doing nothing but polling (and its minute schedules).
            quiet_deadline = time.time() + QUIET_SECONDS
            while count("SELECT count(*) FROM django_q_ormq") and time.time() < quiet_deadline:
                sampler.sample()
                time.sleep(0.5)
            quiet = time.time() - ended
            time.sleep(2.0)
            idle0, idle_pg0, idle_began = cluster.cpu(), postgres_cpu(postmaster), time.time()
            time.sleep(IDLE_SECONDS)
            idle1, idle_end = cluster.cpu(), time.time()
            idle = {
                "worker": idle1["total"] - idle0["total"],
                "roles": {k: v - idle0[k] for k, v in idle1.items()},
                "pg": postgres_cpu(postmaster) - idle_pg0,
                "seconds": idle_end - idle_began,
                "quiet": quiet,
                "left": count("SELECT count(*) FROM django_q_ormq"),
            }
            sampler.sample()
            idle["tasks"] = len(sampler.between(idle_began, idle_end))
        box.parse()
        result = collect(poll, repeat, label, posted, box, sampler, began, drained)
        result |= {
            "busy": busy,
            "idle": idle,
            "load": (load_before, load_after),
            "profile": profile,
            "pick_plan": pick_plan,
        }
        result["ceiling"] = inline_ceiling(port, smtp_port, box)
    say(
        f"   p50 {seconds(result['latency']['p50'])}, p95 {seconds(result['latency']['p95'])},"
        f" max {seconds(result['latency']['max'])}; {result['check']}"
    )
    return result


def collect(
    poll: str,
    repeat: bool,
    label: str,
    posted: dict[str, Any],
    box: Mailbox,
    sampler: Sampler,
    began: float,
    drained: float | None,
) -> dict[str, Any]:
    """Figures of the run, then its correctness checks."""
    answered = {r[0]: r for r in posted["messages"] if r[6] == 200}
    measured = [t for t, r in answered.items() if not r[2]]
    sealed = {
        TOKEN.search(text).group(): at.timestamp()  # type: ignore[union-attr]
        for text, at in Message.objects.values_list("text", "entry__sealed_at")
    }
    staff_n: dict[str, tuple[float, float, int]] = {}
    journal_n: dict[str, int] = {}
    states = collections.Counter(Notification.objects.values_list("state", flat=True))
    for text, kind, created, sent_at, nid in NotificationMessage.objects.values_list(
        "message__text",
        "notification__kind",
        "notification__created_at",
        "notification__sent_at",
        "notification_id",
    ):
        token = TOKEN.search(text).group()  # type: ignore[union-attr]
        if kind == Notification.Kind.JOURNAL:
            journal_n[token] = journal_n.get(token, 0) + 1
        else:
            assert token not in staff_n, f"{token} linked to two staff notifications"
            stamp = sent_at.timestamp() if sent_at else float("nan")
            staff_n[token] = (created.timestamp(), stamp, nid)
    latency, journal_latency = [], []
    stages: dict[str, list[float]] = collections.defaultdict(list)
    for token in measured:
        answer = answered[token][5]
        if token in box.staff:
            latency.append(min(box.staff[token]) - answer)
        if token in box.journal:
            journal_latency.append(min(box.journal[token]) - answer)
        if token in sealed and token in staff_n:
            created, sent_at, _ = staff_n[token]
            stages["sealed"].append(sealed[token] - answer)
            stages["planned"].append(max(created, sealed[token]) - answer)
            stages["sent_at"].append(sent_at - answer)
        if token in box.staff:
            stages["accepted"].append(min(box.staff[token]) - answer)
    by_func: dict[str, list[float]] = collections.defaultdict(list)
    for func, started, stopped in sampler.between(began, drained or time.time()):
        by_func[func].append(stopped - started)
    seal_transactions = count(
        "SELECT count(DISTINCT e.sealed_at) FROM messaging_deliveryseal s"
        " JOIN archive_ledgerentry e ON e.seq = s.seq"
    )
    per_notification = collections.Counter(n for _, _, n in staff_n.values())
    staff_times = sorted(a.at for a in box.accepted if not a.journal)
    last_answer = posted["last_answer"]
    after = [a.at for a in box.accepted if a.at > last_answer]
    timeline = {
        "first_email": staff_times[0] - posted["first_post"] if staff_times else float("nan"),
        "during_load": sum(1 for t in staff_times if t <= last_answer) / max(len(staff_times), 1),
        "load_seconds": last_answer - posted["first_post"],
        "drain_rate": len(after) / (max(after) - last_answer) if after else float("nan"),
    }

    # Correctness.
    missing_staff = sorted(answered.keys() - box.staff.keys())
    missing_journal = sorted(answered.keys() - box.journal.keys())
    twice = sorted(t for t, times in box.staff.items() if len(times) != 1)
    journal_twice = sorted(t for t, times in box.journal.items() if len(times) != 1)
    report = verify_ledger()
    problems = []
    if posted["errors"]:
        problems.append(f"{posted['errors']} POSTs failed: {posted['error_samples']}")
    if drained is None:
        problems.append(f"not all sent within {DRAIN_SECONDS:.0f} s after the last POST")
    if missing_staff or missing_journal:
        problems.append(
            f"no staff email for {len(missing_staff)} ({missing_staff[:5]}), no journal copy"
            f" for {len(missing_journal)} ({missing_journal[:5]})"
        )
    if twice or journal_twice:
        problems.append(f"notified twice: {twice[:5]}; journaled twice: {journal_twice[:5]}")
    if set(states) - {Notification.State.SENT}:
        problems.append(f"notification states {dict(states)}")
    if not report.intact:
        problems.append(f"ledger: {report.problems[:3]}")
    if (
        Delivery.objects.count() != len(posted["messages"])
        or DeliverySeal.objects.count() != len(posted["messages"])
        or len(sealed) != len(posted["messages"])
        or any(journal_n.get(t) != 1 for t in answered)
        or len(staff_n) != len(answered)
    ):
        problems.append(
            f"deliveries {Delivery.objects.count()}, sealed {DeliverySeal.objects.count()},"
            f" messages {len(sealed)}, staff links {len(staff_n)}, journal links"
            f" {sum(journal_n.values())}, for {len(posted['messages'])} POSTs"
        )
    check = (
        "; ".join(problems)
        if problems
        else f"verified: {len(answered):,} messages each in exactly one staff email and one"
        f" journal copy, {sum(states.values()):,} notifications all sent, ledger intact"
        f" ({report.entries:,} entries)"
    )
    return {
        "poll": poll,
        "repeat": repeat,
        "label": label,
        "messages": len(answered),
        "measured": len(measured),
        "staff_emails": box.staff_emails,
        "journal_emails": box.journal_emails,
        "largest": box.largest,
        "notifications": len(per_notification),
        "sessions": box.sessions(),
        "latency": spread(latency),
        "journal": spread(journal_latency),
        "stages": {name: spread(values) for name, values in stages.items()},
        "post": posted["post"],
        "send_lag": posted["send_lag"],
        "tasks": {func: (len(v), spread(v)) for func, v in by_func.items()},
        "depth": max((d for _, d in sampler.depth), default=0),
        "seal_transactions": seal_transactions,
        "drain": (drained - posted["last_answer"]) if drained else float("nan"),
        "timeline": timeline,
        "problems": problems,
        "check": check,
    }


def inline_ceiling(port: int, smtp_port: int, box: Mailbox) -> dict[str, Any]:
    """The same work without the queue, one message at a time: POST to the same gunicorn, then
    process_deliveries() and bridge.dispatch.run() in this process, to the same SMTP server."""
    backend = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": smtp_port,
    }
    latencies, sealing, bridging, queries = [], [], [], []
    statements: list[str] = []
    with override_settings(
        **backend,
        EMAIL_USE_TLS=False,
        EMAIL_USE_SSL=False,
        EMAIL_HOST_USER="",
        EMAIL_HOST_PASSWORD="",
        JOURNAL_EMAIL=backend,
        BRIDGE_FROM_ADDRESS=FROM_ADDRESS,
        PORTAL_URL=PORTAL,
    ):
        for n in range(CEILING_MESSAGES + 3):  # the first three warm this process up
            token = f"ceil-{n:06d}"
            body = text_body(
                CHANNEL,
                f"Please call me about the portfolio, ref {token} (thanks).",
                f"wamid.CEILING{n:010d}",
                f"44771{n:07d}",
                f"Ceiling Client {n}",
            )
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request(
                    "POST",
                    WEBHOOK,
                    body=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": sign(body, SECRET),
                    },
                )
                response = conn.getresponse()
                response.read()
                answered = time.time()
                assert response.status == 200
            finally:
                conn.close()
            with CaptureQueriesContext(connection) as sealed:
                process_deliveries()
            with CaptureQueriesContext(connection) as bridged:
                dispatched = time.time()
                dispatch.run()
                done = time.time()
            box.parse()
            assert len(box.staff.get(token, [])) == 1, f"{token}: no staff email inline"
            assert len(box.journal.get(token, [])) == 1, f"{token}: no journal copy inline"
            if n >= 3:
                latencies.append(box.staff[token][0] - answered)
                sealing.append(dispatched - answered)
                bridging.append(done - dispatched)
                queries.append((len(sealed), len(bridged)))
                statements = [q["sql"] for q in bridged.captured_queries]
    connections.close_all()
    return spread(latencies) | {
        "seal": pct(sealing, 0.5),
        "bridge": pct(bridging, 0.5),
        "seal_queries": pct([q[0] for q in queries], 0.5),
        "bridge_queries": pct([q[1] for q in queries], 0.5),
        "statements": statements,  # type: ignore[dict-item]
    }


# --------------------------------------------------------------------------- profile


def summarize_profile(path: Path, title: str) -> None:
    """py-spy's collapsed stacks of the qcluster processes: the workers' time inside task
    functions, inclusive and by own frame (waiting for PostgreSQL or SMTP included)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = [f for f in stack.split(";") if " (" in f]
        names = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].split("/")[-1] + ")"
            for f in frames
        ]
        n = int(samples)
        top = next((i for i, name in enumerate(names) if name.startswith("worker (")), None)
        if top is None or top + 1 >= len(names):
            continue
        inside = names[top + 1 :]
        total += n
        for name in set(inside):
            inclusive[name] += n
        own[inside[-1]] += n
    say()
    say(f"== py-spy of the qcluster workers (waiting included), {title}")
    if not total:
        return
    rows = [[name[:100], f"{100 * n / total:.1f}%"] for name, n in inclusive.most_common(40)]
    say(table([f"inside worker(), inclusive ({total:,} samples)", "share"], rows))
    rows = [[name[:100], f"{100 * n / total:.1f}%"] for name, n in own.most_common(20)]
    say(table(["inside worker(), own frame", "share"], rows))


# --------------------------------------------------------------------------- the benchmark


def test_bridge_latency(empty_ledger: None, server_settings: str) -> None:
    started = time.perf_counter()
    plans = [(poll, False) for poll in POLLS] + [(poll, True) for poll in REPEAT_POLLS]
    runs = []
    try:
        with minute_schedules_only():
            for number, (poll, repeat) in enumerate(plans):
                runs.append(bridge_run(poll, repeat, number))
    finally:
        connections.close_all()
        empty_queue()
    report(runs, server_settings)
    say(f"   bridge benchmark took {time.perf_counter() - started:,.0f} s")
    failed = [f"{r['label']}: {r['check']}" for r in runs if r["problems"]]
    assert not failed, failed


def report(runs: list[dict[str, Any]], server_settings: str) -> None:
    say()
    rows = []
    for r in runs:
        rows.append(
            [
                r["label"],
                f"{r['measured']:,}",
                f"{r['staff_emails']:,}",
                f"{r['journal_emails']:,}",
                f"{r['sessions']:,}",
                *(shown(r["latency"][p]) for p in ("p50", "p95", "p99", "max")),
                shown(r["journal"]["p95"]),
                shown(r["ceiling"]["p95"]),
                shown(r["post"]["p99"]),
                f"{r['load'][0][0]:.2f} → {r['load'][1][0]:.2f}",
            ]
        )
    say(
        table(
            [
                "run",
                "messages",
                "staff emails",
                "journal",
                "SMTP sessions",
                "p50",
                "p95",
                "p99",
                "max",
                "journal p95",
                "ceiling p95",
                "POST p99",
                "load avg before → after",
            ],
            rows,
            title=f"== bridge: webhook answer → staff email accepted by SMTP, {RATE:.0f}"
            f" messages/s for {SECONDS:.0f} s (one per POST, open loop), gunicorn sync x4 +"
            f" qcluster ({WORKERS} workers, ORM broker) + aiosmtpd; two recipients and a journal"
            f" address ({server_settings})",
        )
    )
    say(
        "   Latency per message: from its POST's answer to the accept of the staff email"
        " carrying it (warm-up left out); journal p95: the same to its journal copy. ceiling:"
        f" {CEILING_MESSAGES} messages POSTed one at a time, then sealed and dispatched inline"
        " (no queue). Load average: 1-minute, before and after the load (2 cores)."
    )
    say()
    rows = []
    for r in runs:
        timeline = r["timeline"]
        rows.append(
            [
                r["label"],
                shown(timeline["load_seconds"]),
                shown(timeline["first_email"]),
                f"{timeline['during_load']:.0%}",
                shown(r["drain"]),
                f"{timeline['drain_rate']:,.1f}/s",
                f"{r['ceiling']['seal'] * 1000:,.1f} ms ({r['ceiling']['seal_queries']:.0f})",
                f"{r['ceiling']['bridge'] * 1000:,.1f} ms ({r['ceiling']['bridge_queries']:.0f})",
            ]
        )
    say(
        table(
            [
                "run",
                "POSTing",
                "1st staff email after 1st POST",
                "staff emails during the load",
                "drain",
                "SMTP accepts/s after the load",
                "inline seal (queries)",
                "inline bridge run (queries)",
            ],
            rows,
            title="== timeline and throughput",
        )
    )
    say(
        "   POSTing: first POST to last answer. drain: from the last answer to everything"
        " accepted and committed as sent. SMTP accepts/s after the load: staff emails and"
        " journal copies accepted after the last answer, per second (the bridge's sending"
        " rate with the workers free). Inline (the ceiling's messages, medians): seal ="
        " process_deliveries() of one delivery, bridge run = dispatch.run() planning and"
        " sending its staff email and journal copy; in brackets, SQL statements."
    )
    say()
    rows = []
    for r in runs:
        cells = [r["label"]]
        for stage in ("sealed", "planned", "sent_at", "accepted"):
            values = r["stages"].get(stage, {})
            cells.append(
                f"{shown(values.get('p50', float('nan')))} /"
                f" {shown(values.get('p95', float('nan')))}"
            )
        cells.append(f"{r['notifications']:,} ({r['largest']} max)")
        cells.append(
            f"{r['seal_transactions']:,} ({r['messages'] / max(r['seal_transactions'], 1):.1f})"
        )
        busy = r["busy"]
        cells.append(f"{busy['web']:.2f}/{busy['worker']:.2f}/{busy['pg']:.2f}/{busy['bench']:.2f}")
        roles = busy["roles"]
        cells.append(f"{roles['pusher']:.2f}/{roles['monitor']:.2f}/{roles['workers etc.']:.2f}")
        rows.append(cells)
    say(
        table(
            [
                "run",
                "→ sealed p50/p95",
                "→ planned p50/p95",
                "→ sent_at p50/p95",
                "→ accepted p50/p95",
                "staff notifications (msgs max)",
                "seal txns (msgs/txn)",
                "CPU web/qcluster/PG/bench",
                "qcluster: pusher/monitor/workers",
            ],
            rows,
            title="== breakdown, cumulative from the webhook's answer",
        )
    )
    say(
        "   sealed: the message's ledger sealed_at (clock_timestamp() under the append lock)."
        " planned: its notification's created_at (start of the planning transaction; a message"
        " joining a waiting notification counts from its own seal). sent_at: stamped after the"
        " SMTP server's 250 (so just after 'accepted'). CPU: cores used on average from the"
        " first POST to the drain's end by the gunicorn workers, the qcluster process group, all"
        " of PostgreSQL and this process (the SMTP server); the qcluster's split by process"
        " ('workers' includes the sentinel and recycled workers)."
    )
    say()
    rows = []
    for r in runs:
        for func, (n, values) in sorted(r["tasks"].items(), key=lambda kv: -kv[1][0]):
            rows.append(
                [
                    r["label"],
                    func,
                    f"{n:,}",
                    *(shown(values[p]) for p in ("p50", "p95", "max")),
                    f"{r['depth']:,}",
                ]
            )
    say(
        table(
            ["run", "task", "done", "enqueue→done p50", "p95", "max", "queue depth max"],
            rows,
            title="== django-q2 tasks done during the run (django_q_task, sampled every 0.5 s)",
        )
    )
    say()
    rows = []
    for r in runs:
        idle = r["idle"]
        wall = idle["seconds"]
        roles = idle["roles"]
        rows.append(
            [
                r["label"],
                f"{idle['worker']:.2f} s",
                f"{idle['worker'] / wall:.3f}",
                f"{roles['pusher']:.2f} / {roles['monitor']:.2f} / {roles['workers etc.']:.2f} s",
                f"{idle['pg']:.2f} s",
                f"{idle['pg'] / wall:.3f}",
                str(idle["tasks"]),
                shown(idle["quiet"]) + ("" if not idle["left"] else f" ({idle['left']} left)"),
            ]
        )
    say(
        table(
            [
                "run",
                "qcluster CPU",
                "cores",
                "pusher / monitor / workers",
                "PostgreSQL CPU",
                "cores",
                "tasks meanwhile",
                "queue empty after",
            ],
            rows,
            title=f"== idle cost of the worker after each run, over {IDLE_SECONDS:.0f} s with"
            " nothing to send (utime+stime of the qcluster process group, and of all of"
            " PostgreSQL)",
        )
    )
    say(
        "   Measured once the queue is empty: 'queue empty after' is how long the wake-ups left"
        " over (mostly no-op sequencer runs) took to run after everything was sent."
    )
    statements = runs[0]["ceiling"]["statements"] if runs else []
    if statements:
        say()
        shapes = collections.Counter(re.sub(r"\s+", " ", q)[:150] for q in statements)
        say(
            table(
                ["statement (first 150 characters)", "times"],
                [[q, str(n)] for q, n in shapes.most_common()],
                title=f"== SQL of one inline dispatch.run(): one message, its staff email and"
                f" journal copy ({len(statements)} statements)",
            )
        )
    for r in runs:
        say()
        say(
            f"== send_due()'s pick of the next notification, backlog >= {PICK_BACKLOG:,},"
            f" {r['label']}:"
        )
        say(r["pick_plan"])
    for r in runs:
        record(
            Figure(
                f"bridge p95 answer→SMTP @{RATE:.0f}/s, {r['label']}",
                r["latency"]["p95"],
                "s",
                r["ceiling"]["p95"],
                "inline, 1 at a time",
                "-",
                TARGET,
            )
        )
        if r["profile"] is not None:
            summarize_profile(r["profile"], r["label"])
            if LOG_DIR:
                shutil.copy(
                    r["profile"], Path(LOG_DIR) / f"pyspy-{r['poll']}-{int(r['repeat'])}.txt"
                )
            r["profile"].unlink()
