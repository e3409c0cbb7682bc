"""The real processes of a deployment, on loopback: nodes that share only PostgreSQL, the S3
endpoint and (when asked) a Redis server, each in an empty working directory of its own.

The commands are those of deploy/systemd/*.service and scripts/localdev.py (`make run`):
gunicorn on clientwindow.wsgi, `manage.py qcluster`, `manage.py run_sequencer`.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from scripts.localdev import end_groups
from tests.conftest import superuser_connect

ROOT = Path(__file__).resolve().parents[2]
APP_SECRET = "two-node-app-secret"
STARTUP = 60.0  # seconds; a busy 2-core host needs 5-10 s to import Django and the apps


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {seconds:.0f} s"
        time.sleep(0.2)
    return result


def database_url() -> str:
    """The runtime role on this session's test database (as tests/messaging/test_crash.py)."""
    name = settings.DATABASES["default"]["NAME"]
    return os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name


def answers(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        return httpx.get(url, timeout=30, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


@dataclass
class Node:
    """One machine: its own working directory, var/, MEDIA_ROOT and EXPORT_ROOT; nothing on
    disk is shared with another node."""

    name: str
    home: Path
    env: dict[str, str]
    logs: Path
    groups: list[int] = field(default_factory=list)
    port: int = 0  # its web server's, once started

    @property
    def local_dirs(self) -> list[Path]:
        return [Path(self.env["MEDIA_ROOT"]), Path(self.env["EXPORT_ROOT"])]

    def start(self, label: str, *command: str) -> subprocess.Popen[bytes]:
        log = self.logs / f"{self.name}-{label}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                command,
                cwd=self.home,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # what qcluster forks goes with its group
            )
        self.groups.append(process.pid)
        return process

    def manage(self, *args: str) -> subprocess.Popen[bytes]:
        return self.start(args[0], sys.executable, str(ROOT / "manage.py"), *args)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A management command to its end, as an operator runs it on this node."""
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def gunicorn(self) -> int:
        """The web node, as clientwindow-web.service runs it; returns its port once it answers."""
        port = free_port()
        web = self.start(
            "gunicorn",
            *[sys.executable, "-m", "gunicorn", "clientwindow.wsgi"],
            *["--config", str(ROOT / "gunicorn.conf.py")],
            *["--bind", f"127.0.0.1:{port}", "--workers", "2", "--access-logfile", "-"],
        )
        for _ in range(4):  # each worker loads the app on its first request, not before
            wait_until(lambda: answers(port) or web.poll() is not None, STARTUP, self.name)
            assert web.poll() is None, self.log("gunicorn")
        # each worker ran gunicorn.conf.py's post_worker_init once it had loaded the app
        frozen = "garbage collection between requests"
        wait_until(lambda: self.log("gunicorn").count(frozen) >= 2, STARTUP, self.name)
        return port

    def log(self, label: str) -> str:
        path = self.logs / f"{self.name}-{label}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Nodes on this session's test database; every process they started ends with the test."""
    nodes: list[Node] = []
    logs = tmp_path / "logs"
    logs.mkdir()
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLIENTWINDOW_", "DJANGO_", "Q_", "STORAGE_", "EXPORT_", "MEDIA_"))
    }

    def make(name: str, **extra: str) -> Node:
        home = tmp_path / name
        (home / "tmp").mkdir(parents=True)
        env = {
            **inherited,
            "PYTHONPATH": str(ROOT),  # the code is installed once per host, outside the node dir
            "DJANGO_SETTINGS_MODULE": "clientwindow.settings",
            "DATABASE_URL": database_url(),
            "CLIENTWINDOW_LOCAL": "1",
            "CLIENTWINDOW_DEBUG": "0",
            "DJANGO_SECRET_KEY": "two-node-secret-key-" + "x" * 40,
            "HOME": str(home),  # gunicorn's control socket, for one, goes under ~/.gunicorn
            "CLIENTWINDOW_VAR_DIR": str(home / "var"),
            "MEDIA_ROOT": str(home / "media"),
            "EXPORT_ROOT": str(home / "exports"),
            "TMPDIR": str(home / "tmp"),  # where a worker builds an export before uploading it
            "WHATSAPP_APP_SECRET": APP_SECRET,
            "Q_WORKERS": "1",
            **extra,
        }
        node = Node(name, home, env, logs)
        nodes.append(node)
        return node

    yield make
    # all at once: a qcluster ignores SIGTERM while a task runs, and each waits out the grace
    end_groups([group for node in nodes for group in node.groups], grace=4)


@pytest.fixture
def no_schedules_due(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Every schedule moved a day on (restored after): the tasks these tests see are the ones
    they cause, and the workers start without the daily verification of a whole archive.
    Tasks earlier tests queued but never ran are dropped, with their wake-up marks: a mark
    left set means "a run is already waiting", and no wake-up would be queued."""
    with superuser_connect() as conn:
        conn.execute("TRUNCATE django_q_ormq, django_q_task, messaging_wakeup")
    with django_db_blocker.unblock():
        saved = dict(Schedule.objects.values_list("pk", "next_run"))
        Schedule.objects.update(next_run=timezone.now() + timedelta(days=1))
        try:
            yield
        finally:
            for pk, next_run in saved.items():
                Schedule.objects.filter(pk=pk).update(next_run=next_run)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    """Debian's redis-server on a free loopback port, in a temporary directory, nothing saved
    to disk; yields its URL (database 0)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(binary, os.X_OK):
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    directory = tmp_path / "redis"
    directory.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [
            *[binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)],
            *["--save", "", "--appendonly", "no", "--logfile", str(directory / "redis.log")],
        ],
        start_new_session=True,
    )
    client = redis.Redis(port=port)

    def answers() -> bool:
        assert server.poll() is None, (directory / "redis.log").read_text(errors="replace")
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, 20, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        end_groups([server.pid], grace=4)
