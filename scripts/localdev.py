"""Local orchestration for `make run`, `make test` and `make bench` (standard library + psycopg).

- `run`: the project's own PostgreSQL cluster under var/pg (unless DATABASE_URL is set),
  migrations as the owner role, a demo administrator, then a small supervisor of the django-q2
  worker, the sealer, the web server and the mail gateway: each in a process group of its own,
  started again when it exits. Ctrl-C or SIGTERM, once or twice, stops everything it started
  within about 10 s (SIGKILL after STOP_GRACE); a run killed outright is cleaned up by the next.
  With LOCAL_TSA=1 a real RFC 3161 timestamp authority too (scripts/local_tsa.py, its PKI
  under var/tsa), with TSA_URLS and TSA_CA_FILE pointing the portal and the worker at it.
- `test -- CMD…` / `bench -- CMD…`: a throwaway cluster for one command, removed afterwards.

PostgreSQL refuses to run as root, so as root the cluster runs as the system account
`clientwindow-pg`. The socket directory is private to that account (and root); TCP on
127.0.0.1 needs the passwords kept in var/pg/passwords.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("CLIENTWINDOW_VAR_DIR", ROOT / "var"))
PG_ACCOUNT = "clientwindow-pg"
SUPERUSER = "postgres"
OWNER = "clientwindow_owner"
RUNTIME = "clientwindow_app"
AUDITOR = "clientwindow_auditor"
DBNAME = "clientwindow"


def say(message: str) -> None:
    print(f"localdev: {message}", flush=True)  # noqa: T201


def pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=_version_key)
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if path:
        return path
    sys.exit(f"localdev: PostgreSQL's {name} not found; run `make setup` (as root) first")


def _version_key(path: Path) -> int:
    part = path.parent.parent.name
    return int(part) if part.isdigit() else 0


def as_cluster_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", PG_ACCOUNT, "--", *args]


def ensure_account() -> None:
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(PG_ACCOUNT)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_ACCOUNT],
            check=True,
        )


def give_to_cluster_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user=PG_ACCOUNT, group=PG_ACCOUNT)
    path.chmod(0o700)


class Cluster:
    def __init__(self, base: Path, port: int, tcp: bool) -> None:
        self.base, self.port, self.tcp = base, port, tcp
        self.data, self.run_dir, self.log = base / "data", base / "run", base / "postgres.log"

    def initdb(self) -> None:
        ensure_account()
        self.base.mkdir(parents=True, exist_ok=True)
        for path in (self.base, self.run_dir):
            path.mkdir(exist_ok=True)
            give_to_cluster_user(path)
        say(f"creating a PostgreSQL cluster in {self.data}")
        subprocess.run(
            as_cluster_user(
                [
                    pg_bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def running(self) -> bool:
        status = subprocess.run(
            as_cluster_user([pg_bin("pg_ctl"), "-D", str(self.data), "status"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return status.returncode == 0

    def start(self) -> None:
        if self.running():
            sys.exit(
                f"localdev: PostgreSQL in {self.data} is already running (another `make run`?)"
            )
        listen = "127.0.0.1" if self.tcp else ""
        options = (
            f"-c listen_addresses='{listen}' -c port={self.port} "
            f"-c unix_socket_directories='{self.run_dir}' -c unix_socket_permissions=0700"
        )
        # a throwaway test cluster trades durability for speed, unless a benchmark asks for
        # the durable settings `make run` has (CLIENTWINDOW_THROWAWAY_DURABLE=1)
        if not self.tcp and os.environ.get("CLIENTWINDOW_THROWAWAY_DURABLE") != "1":
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(
            as_cluster_user(
                [
                    pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        """Fast (sessions cut, a checkpoint); immediate if that takes over 5 s."""
        for mode in ("fast", "immediate"):
            stopped = subprocess.run(
                as_cluster_user(
                    [pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "5", "stop"]
                ),
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if stopped.returncode == 0 or not self.running():
                return

    def url(self, user: str, dbname: str = DBNAME) -> str:
        return f"postgres://{user}@{quote(str(self.run_dir), safe='')}:{self.port}/{dbname}"

    def connect(self, user: str = SUPERUSER, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.run_dir), port=self.port, user=user, dbname=dbname, autocommit=True
        )

    def bootstrap(self) -> dict[str, str]:
        """Create the roles and the database as deploy/postgres-roles.sql does; return passwords."""
        passwords = {role: secrets.token_urlsafe(24) for role in (OWNER, RUNTIME, AUDITOR)}
        db = sql.Identifier(DBNAME)
        with self.connect() as conn:
            for role, extra in ((OWNER, "CREATEDB"), (RUNTIME, ""), (AUDITOR, "")):
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD {}").format(
                        sql.Identifier(role), sql.SQL(extra), sql.Literal(passwords[role])
                    )
                )
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, sql.Identifier(OWNER)))
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
            for role, rights in ((RUNTIME, "CONNECT, TEMPORARY"), (AUDITOR, "CONNECT")):
                conn.execute(
                    sql.SQL("GRANT {} ON DATABASE {} TO {}").format(
                        sql.SQL(rights), db, sql.Identifier(role)
                    )
                )
        return passwords


def database_env(cluster: Cluster) -> dict[str, str]:
    return {
        "DATABASE_URL": cluster.url(RUNTIME),
        "DATABASE_OWNER_URL": cluster.url(OWNER),
        "DATABASE_SUPERUSER_URL": cluster.url(SUPERUSER),
        "DATABASE_AUDITOR_ROLE": AUDITOR,
    }


# The command run on a throwaway cluster may start throwaway clusters of its own under
# THROWAWAY_DIR/NESTED/<name> (the test suite does, one per pytest-xdist worker); they are
# stopped with the outer one, even when the process that started them was killed.
THROWAWAY_DIR = "CLIENTWINDOW_THROWAWAY_DIR"
NESTED = "nested"


@contextlib.contextmanager
def throwaway_cluster(base: Path | None = None) -> Iterator[Cluster]:
    """A cluster for one command, in `base` (a new temporary directory unless given)."""
    ensure_account()
    base = base or Path(tempfile.mkdtemp(prefix="clientwindow-pg-"))
    cluster = Cluster(base, port=5432, tcp=False)
    try:
        cluster.initdb()
        cluster.start()
        cluster.bootstrap()
        yield cluster
    finally:
        for data in sorted(base.glob(f"{NESTED}/*/data")):
            Cluster(data.parent, port=5432, tcp=False).stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def run_with_throwaway(command: list[str]) -> int:
    with throwaway_cluster() as cluster:
        env = {**os.environ, **database_env(cluster), "CLIENTWINDOW_LOCAL": "1"}
        env[THROWAWAY_DIR] = str(cluster.base)
        with subprocess.Popen(command, env=env, cwd=ROOT) as child:
            # A plain kill (SIGTERM) is passed on to the command and its end awaited: the
            # clusters are then removed, not left running by a launcher that died at once.
            signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
            try:
                return child.wait()
            except KeyboardInterrupt:  # Ctrl-C reached the command too; as subprocess.run does
                child.kill()
                raise


def local_cluster() -> Cluster:
    cluster = Cluster(
        VAR / "pg", port=int(os.environ.get("CLIENTWINDOW_PG_PORT", "5544")), tcp=True
    )
    if not (cluster.data / "PG_VERSION").exists():
        cluster.initdb()
        cluster.start()
        passwords = cluster.bootstrap()
        secret = VAR / "pg" / "passwords.json"
        secret.write_text(json.dumps(passwords, indent=2))
        secret.chmod(0o600)
    else:
        if cluster.running():  # left by a run killed before its clean-up (end_abandoned_run)
            say("stopping the PostgreSQL that an abandoned run left running")
            cluster.stop()
        cluster.start()  # pg_ctl sees through a stale postmaster.pid
    return cluster


class Stopped(Exception):
    """A stop was requested while `make run` was still starting."""


class StopFlag:
    """SIGINT, SIGTERM and SIGHUP only set a flag, however often they come: the launcher's
    clean-up can then never be cut short by a second Ctrl-C (issue 13 §5)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: object) -> None:
        if not self.requested:
            say(f"{signal.Signals(signum).name}: stopping everything")
        self.requested = True

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self)

    def check(self) -> None:
        if self.requested:
            raise Stopped


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0  # exits in a row that came soon after a start
    due: float = 0.0  # when to start it again after an exit


class Supervisor:
    """Children in process groups of their own (so that what they fork goes with them): a child
    that exits is started again after a pause that doubles while it keeps failing, and stop()
    ends every group, SIGTERM first, SIGKILL after `grace` seconds."""

    def __init__(self, env: dict[str, str], flag: StopFlag, state: Path | None = None) -> None:
        self.env, self.flag, self.state = env, flag, state
        self.children: list[Child] = []

    def spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, start_new_session=True)
        self.save(extra=[process.pid])
        return process

    def once(self, name: str, command: list[str]) -> None:
        """Run a command to its end (migrate, seed); a stop request ends it at once."""
        process = self.spawn(command)
        try:
            while process.poll() is None:
                if self.flag.requested:
                    end_groups([process.pid], grace=STOP_GRACE)
                    raise Stopped
                time.sleep(TICK)
        finally:
            self.save()
        if process.returncode != 0:
            raise SystemExit(f"localdev: {name} failed (exit status {process.returncode})")

    def add(self, name: str, command: list[str]) -> None:
        child = Child(name, command)
        self.children.append(child)
        self._start(child)

    def _start(self, child: Child) -> None:
        child.process, child.started = self.spawn(child.command), time.monotonic()
        self.save()

    def tend(self) -> None:
        """Restart what exited (after its own leftovers are killed), when its pause is over."""
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if process is not None and process.poll() is not None:
                end_groups([process.pid], grace=0)  # e.g. the workers a killed qcluster left
                child.failures = child.failures + 1 if now - child.started < STEADY else 0
                pause = min(RESTART_MAX, RESTART_FIRST * 2**child.failures)
                say(
                    f"{child.name} exited (status {process.returncode}); "
                    f"starting it again in {pause:.0f} s"
                )
                child.process, child.due = None, now + pause
            if child.process is None and now >= child.due:
                self._start(child)

    def stop(self) -> None:
        alive = [c.process.pid for c in self.children if c.process and c.process.poll() is None]
        end_groups([c.process.pid for c in self.children if c.process], grace=STOP_GRACE)
        if alive:
            say(f"stopped {', '.join(c.name for c in self.children)}")
        self.children = []
        self.save()

    def save(self, extra: tuple[int, ...] | list[int] = ()) -> None:
        """What a later `make run` must end if this one is killed before its clean-up."""
        if self.state is None:
            return
        groups = [c.process.pid for c in self.children if c.process] + list(extra)
        born = {str(g): started_at(g) for g in groups}  # pids are reused: see end_abandoned_run
        names = {c.name: c.process.pid for c in self.children if c.process}
        me = os.getpid()
        state = {"pid": me, "started": started_at(me), "groups": groups, "born": born}
        state["children"] = names
        # Whole or not at all (a new file renamed over the old): a reader never finds it empty
        # or cut short, as it could between write_text's truncation and its write, nor does a
        # run killed at that moment leave a file that says nothing about its children.
        part = self.state.with_name(f".{self.state.name}.{me}")
        part.write_text(json.dumps(state))
        part.replace(self.state)


RESTART_FIRST, RESTART_MAX = 1.0, 10.0  # seconds before a crashed child is started again
STEADY = 10.0  # a child that ran this long before exiting starts again after RESTART_FIRST
STOP_GRACE = 4.0  # seconds between SIGTERM and SIGKILL: qcluster ignores SIGTERM for a minute
TICK = 0.2


def end_groups(pgids: list[int], grace: float) -> None:
    """SIGTERM each process group, wait up to `grace` seconds, SIGKILL what is left; reap."""
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(group_alive(g) for g in pgids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 2  # SIGKILL is not instant: see them gone (and reaped)
    while any(group_alive(g) for g in pgids) and time.monotonic() < deadline:
        time.sleep(0.02)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count: ours are reaped
    here, and an orphan's wait on an init that never reaps it)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def end_abandoned_run(state: Path) -> None:
    """A previous `make run` killed before its clean-up (SIGKILL, a closed terminal) leaves its
    children and PostgreSQL running. Refuse while it is alive; otherwise end what it started.
    Its PostgreSQL is stopped too and started again, rather than reused: one path, and the
    cluster then runs with the settings this run gives it."""
    try:
        previous = json.loads(state.read_text())
    except (OSError, ValueError):
        return
    pid = int(previous.get("pid", 0))
    if pid and pid != os.getpid() and started_at(pid) == previous.get("started"):
        sys.exit(f"localdev: `make run` is already running (pid {pid})")
    born = previous.get("born", {})
    ours = [g for g in previous.get("groups", []) if born.get(str(g)) == started_at(g) is not None]
    if ours:
        say(f"ending {len(ours)} process group(s) left by an abandoned run")
        end_groups(ours, grace=STOP_GRACE)
    state.unlink(missing_ok=True)


def started_at(pid: int) -> int | None:
    """When the process started (clock ticks since boot): with the pid, who it is."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def wait_for_port(port: int, flag: StopFlag, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        flag.check()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(TICK)
    sys.exit(f"localdev: nothing listens on port {port} after {seconds:.0f}s")


def portal_commands(port: str) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "worker": [python, "manage.py", "qcluster"],
        # sealing, independent of the worker's health (messaging/sealer.py)
        "sealer": [python, "manage.py", "run_sequencer"],
        "web server": [
            *[python, "-m", "gunicorn", "clientwindow.wsgi", "--bind", f"127.0.0.1:{port}"],
            *["--config", str(ROOT / "gunicorn.conf.py")],  # collections between requests
            *["--workers", "2", "--access-logfile", "-"],
        ],
        # staff reply emails (bridge/gateway.py), on MAIL_GATEWAY_PORT (default 2525)
        "mail gateway": [python, "manage.py", "run_mail_gateway"],
    }


def run_portal(flag: StopFlag) -> int:
    env = {**os.environ, "CLIENTWINDOW_LOCAL": "1"}
    VAR.mkdir(parents=True, exist_ok=True)
    state = VAR / "localdev.json"
    end_abandoned_run(state)
    supervisor = Supervisor(env, flag, state)
    supervisor.save()
    cluster = None
    try:
        cluster = None if os.environ.get("DATABASE_URL") else local_cluster()
        flag.check()
        if os.environ.get("LOCAL_TSA") == "1":
            start_local_tsa(supervisor, flag)
        supervisor.once("migrate", [sys.executable, "manage.py", "migrate", "--no-input"])
        supervisor.once("ensure_demo_admin", [sys.executable, "manage.py", "ensure_demo_admin"])
        port = os.environ.get("PORT", "8000")
        for name, command in portal_commands(port).items():
            supervisor.add(name, command)
        wait_for_port(int(port), flag)
        url = f"http://127.0.0.1:{port}/webhooks/whatsapp/"
        supervisor.once("seed_demo", [sys.executable, "manage.py", "seed_demo", "--url", url])
        # localhost, not 127.0.0.1: the name passkeys work at without TLS
        say(f"the portal is at http://localhost:{port}/ — Ctrl-C stops everything")
        say("the demo administrator signs in with its password, then adds a second factor")
        serve(supervisor, flag)
        return 0
    except Stopped:
        return 0
    finally:
        supervisor.stop()
        if cluster is not None:
            say("stopping PostgreSQL")
            cluster.stop()
        state.unlink(missing_ok=True)


def start_local_tsa(supervisor: Supervisor, flag: StopFlag) -> None:
    """LOCAL_TSA=1: a real RFC 3161 TSA on loopback (scripts/local_tsa.py, its PKI under
    var/tsa) timestamps the checkpoints; the processes started after it are pointed at it."""
    with socket.socket() as probe:  # a free port, taken again by the TSA at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = VAR / "tsa"
    command = [sys.executable, "scripts/local_tsa.py", "--dir", str(directory), "--port", str(port)]
    supervisor.add("timestamp authority", command)
    wait_for_port(port, flag)  # its PKI is made before it listens
    supervisor.env["TSA_URLS"] = f"http://127.0.0.1:{port}/"
    supervisor.env["TSA_CA_FILE"] = str(directory / "root.pem")
    say(f"timestamps from the local TSA at http://127.0.0.1:{port}/")


def serve(supervisor: Supervisor, flag: StopFlag) -> None:
    while not flag.requested:
        supervisor.tend()
        time.sleep(TICK)


def supervise(flag: StopFlag, commands: list[list[str]]) -> int:
    """`localdev.py supervise -- 'CMD ARGS' …`: the supervisor of `run` without the portal
    (tests/clientwindow/test_localdev.py runs it on small commands)."""
    VAR.mkdir(parents=True, exist_ok=True)
    state = VAR / "localdev.json"
    end_abandoned_run(state)
    supervisor = Supervisor({**os.environ}, flag, state)
    try:
        for number, command in enumerate(commands, 1):
            supervisor.add(f"child {number}", command)
        serve(supervisor, flag)
        return 0
    finally:
        supervisor.stop()
        state.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if not argv:
        sys.exit("usage: localdev.py run | throwaway -- COMMAND… | supervise -- 'COMMAND'…")
    if argv[0] == "run":
        # Ctrl-C and a plain kill both stop everything (a background shell may ignore SIGINT).
        flag = StopFlag()
        flag.install()
        return run_portal(flag)
    if argv[0] == "supervise":
        flag = StopFlag()
        flag.install()
        lines = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        return supervise(flag, [shlex.split(line) for line in lines])
    if argv[0] == "throwaway":
        command = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        return run_with_throwaway(command)
    sys.exit(f"localdev: unknown command {argv[0]!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
