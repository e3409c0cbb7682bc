"""Export storage benchmark: peak memory and wall time of a 1 GB export file uploaded to the
exports store (archive.objectstore `save_stream`: multipart) and downloaded through the real
download view (exports/serving.py: streamed from the bucket, SHA-256 checked as it goes), beside
the same transfers done with bare boto3 (`upload_fileobj`, `download_fileobj` into /dev/null)
with the same transfer settings, in the same run.

Each transfer runs in a fresh child process that reports its own peak RSS. The issue asks for
ru_maxrss; it is printed too, but the figure is VmHWM from /proc/self/status: Linux carries
ru_maxrss across fork and exec, so a child of a large pytest process would report the parent's
peak (tests/performance/test_bench_bundle.py measures the same way). The target is a peak under
150 MB whatever the file's size: nothing holds the file, only parts (8 MiB, 2 threads) and
chunks (1 MiB, one held back for the SHA-256 check).

The S3 endpoint is moto's server, started here as a separate process (`python -m moto.server`):
moto keeps every object in its own memory, which must not be counted in the measured process.
The download child uses Django's test client on the real view (access check, access-log line and
sealed `export.downloaded` included) and consumes the streamed response chunk by chunk.

Environment: BENCH_STORAGE_BYTES (1 GiB) shrinks the file. The file is written once, from one
random MiB repeated (incompressible per part, fast to make), to a temporary directory.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from access import roles
from exports.models import Export
from tests.conftest import TEST_DB
from tests.performance.conftest import Figure, record, say, seconds, table
from tests.s3 import CREDENTIALS

ROOT = Path(__file__).resolve().parents[2]
SIZE = int(os.environ.get("BENCH_STORAGE_BYTES", str(1 << 30)))
TARGET_MB = 150
RESULT = "bench-storage-result "
NAME = "bench/bundle.zip"

# A child's peak: VmHWM (see the docstring) and ru_maxrss, in KiB.
PEAK = (
    "def peak():\n"
    "    import resource\n"
    "    hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM:')][0].split()[1]\n"
    "    return int(hwm), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
)
BARE = PEAK + (
    "import json, os, sys, time, boto3\n"
    "from archive.storage_config import storage_options\n"
    "action, endpoint, bucket, key, path = sys.argv[1:]\n"
    "client = boto3.client('s3', endpoint_url=endpoint, region_name='us-east-1')\n"
    "config = storage_options('', 's3://b', '')['OPTIONS']['transfer_config']  # the app's\n"
    "ready = peak()[0]\n"
    "began = time.perf_counter()\n"
    "if action == 'upload':\n"
    "    with open(path, 'rb') as source:\n"
    "        client.upload_fileobj(source, bucket, key, Config=config)\n"
    "else:\n"
    "    with open(os.devnull, 'wb') as sink:\n"
    "        client.download_fileobj(bucket, key, sink, Config=config)\n"
    "spent = time.perf_counter() - began\n"
    "hwm, maxrss = peak()\n"
    f"print({RESULT!r} + json.dumps([spent, hwm, maxrss, ready]))\n"
)
APP = PEAK + (
    "import json, sys, django\n"
    "django.setup()\n"
    "from tests.performance.test_bench_storage import app_child\n"
    "app_child(peak, *sys.argv[1:])\n"
)


def app_child(peak: Any, action: str, path: str, export_pk: str, username: str) -> None:
    """In the child: the app's upload (save_stream) or download (the portal's view)."""
    from archive import objectstore

    for alias in ("default", "owner"):  # the test database, as tests/conftest.py points to it
        settings.DATABASES[alias]["NAME"] = TEST_DB
        connections[alias].settings_dict["NAME"] = TEST_DB
    client = Client()
    if action == "download":
        client.force_login(User.objects.get(username=username))
    ready = peak()[0]
    began = time.perf_counter()
    if action == "upload":
        with Path(path).open("rb") as source:
            objectstore.exports().save_stream(NAME, source)
    else:
        response = client.get(reverse("exports:download", args=[export_pk]), secure=True)
        assert response.status_code == 200, response.status_code
        received = sum(len(chunk) for chunk in response.streaming_content)
        assert received == SIZE, received
    spent = time.perf_counter() - began
    hwm, maxrss = peak()
    sys.stdout.write(RESULT + json.dumps([spent, hwm, maxrss, ready]) + "\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """moto's S3 server in a process of its own (it keeps objects in its memory)."""
    port = free_port()
    env = {**os.environ, **CREDENTIALS}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def big_file() -> Iterator[tuple[Path, str]]:
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as work:
        path = Path(work) / "bundle.zip"
        with path.open("wb") as out:
            for start in range(0, SIZE, len(block)):
                piece = block[: min(len(block), SIZE - start)]
                out.write(piece)
                digest.update(piece)
        yield path, digest.hexdigest()


def run(code: str, env: dict[str, str], *args: str) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith(RESULT)]
    result: list[float] = json.loads(line.removeprefix(RESULT))
    return result


def downloadable(sha256: str) -> tuple[Export, User]:
    """A committed user and a finished export whose file is NAME in the exports store."""
    user, _ = User.objects.get_or_create(username=f"bench-storage-{uuid.uuid4().hex[:8]}")
    user.groups.set(Group.objects.filter(name=roles.AUDITOR))
    export = Export.objects.create(
        requested_by=user,
        format="bundle",
        scope_kind="conversation",
        scope={"kind": "conversation", "conversation": 1},
        scope_label="benchmark",
        state=Export.State.DONE,
        file_name=NAME,
        file_size=SIZE,
        file_sha256=sha256,
        finished_at=timezone.now(),
    )
    return export, user


def mb(kib: float) -> str:
    return f"{kib / 1024:,.0f} MB"


def test_bench_export_storage_memory(
    committed: None, moto_server: str, big_file: tuple[Path, str]
) -> None:
    path, sha256 = big_file
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/exports?endpoint={moto_server}&addressing=path"
    env = {**os.environ, **CREDENTIALS, "EXPORT_STORAGE_URL": url, "ALLOWED_HOSTS": "testserver"}
    export, user = downloadable(sha256)
    connections.close_all()  # the children see the committed rows
    args = (str(path), str(export.pk), user.username)
    app_up = run(APP, env, "upload", *args)
    stored = s3.head_object(Bucket=bucket, Key=f"exports/{NAME}")["ContentLength"]
    assert stored == SIZE, stored
    app_down = run(APP, env, "download", *args)
    bare_up = run(BARE, env, "upload", moto_server, bucket, "bare/bundle.zip", str(path))
    bare_down = run(BARE, env, "download", moto_server, bucket, "bare/bundle.zip", str(path))
    rows = []
    for label, ours, bare in (("upload", app_up, bare_up), ("download", app_down, bare_down)):
        rows.append(
            [
                label,
                seconds(ours[0]),
                mb(ours[1]),
                mb(ours[2]),
                mb(ours[3]),
                seconds(bare[0]),
                mb(bare[1]),
                mb(bare[3]),
                f"{ours[1] / bare[1]:.2f}",
                f"{ours[0] / bare[0]:.2f}",
            ]
        )
        name = f"export {label} of {SIZE / (1 << 20):,.0f} MiB, S3 (moto)"
        record(Figure(name, ours[0], "s", bare[0], "bare boto3"))
    say()
    say(
        table(
            [
                "transfer",
                "app time",
                "app peak",
                "(ru_maxrss)",
                "(before)",
                "boto3 time",
                "boto3 peak",
                "(before)",
                "peak ratio",
                "time ratio",
            ],
            rows,
            title=f"== export storage: {SIZE:,} bytes; peak = VmHWM of the child;"
            f" target under {TARGET_MB} MB",
        )
    )
    for label, ours in (("upload", app_up), ("download", app_down)):
        say(f"{label}: peak {mb(ours[1])} {'under' if ours[1] < TARGET_MB * 1024 else 'OVER'}")
    Export.objects.filter(pk=export.pk).delete()
