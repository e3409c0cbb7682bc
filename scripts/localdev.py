"""Local orchestration for `make run`, `make test` and `make bench` (standard library + psycopg).

- `run`: the project's own PostgreSQL cluster under var/pg (unless DATABASE_URL is set),
  migrations as the owner role, a demo administrator, the django-q2 worker and the web server.
  Ctrl-C stops everything it started.
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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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
        if not self.tcp:  # a throwaway test cluster trades durability for speed
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
        subprocess.run(
            as_cluster_user([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
        )

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


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    ensure_account()
    base = Path(tempfile.mkdtemp(prefix="clientwindow-pg-"))
    cluster = Cluster(base, port=5432, tcp=False)
    try:
        cluster.initdb()
        cluster.start()
        cluster.bootstrap()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def run_with_throwaway(command: list[str]) -> int:
    with throwaway_cluster() as cluster:
        env = {**os.environ, **database_env(cluster), "CLIENTWINDOW_LOCAL": "1"}
        return subprocess.run(command, env=env, cwd=ROOT, check=False).returncode


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
        cluster.start()
    return cluster


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    sys.exit(f"localdev: nothing listens on port {port} after {seconds:.0f}s")


def run_portal() -> int:
    env = {**os.environ, "CLIENTWINDOW_LOCAL": "1"}
    cluster = None if os.environ.get("DATABASE_URL") else local_cluster()
    children: list[subprocess.Popen[bytes]] = []
    try:
        manage("migrate", "--no-input", env=env)
        manage("ensure_demo_admin", env=env)
        port = os.environ.get("PORT", "8000")
        children.append(
            subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env)
        )
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "clientwindow.wsgi",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    "--access-logfile",
                    "-",
                ],
                cwd=ROOT,
                env=env,
            )
        )
        # staff reply emails (bridge/gateway.py), on MAIL_GATEWAY_PORT (default 2525)
        children.append(
            subprocess.Popen([sys.executable, "manage.py", "run_mail_gateway"], cwd=ROOT, env=env)
        )
        wait_for_port(int(port))
        manage("seed_demo", "--url", f"http://127.0.0.1:{port}/webhooks/whatsapp/", env=env)
        say(f"the portal is at http://127.0.0.1:{port}/ — Ctrl-C stops everything")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=20)
        if cluster is not None:
            say("stopping PostgreSQL")
            cluster.stop()


def main(argv: list[str]) -> int:
    if not argv:
        sys.exit("usage: localdev.py run | throwaway -- COMMAND…")
    if argv[0] == "run":
        # Ctrl-C and a plain kill both stop everything (a background shell may ignore SIGINT).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        return run_portal()
    if argv[0] == "throwaway":
        command = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        return run_with_throwaway(command)
    sys.exit(f"localdev: unknown command {argv[0]!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
