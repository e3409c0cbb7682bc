"""Evidence bundle benchmark: time and peak memory of one bundle over BENCH_BUNDLE_MESSAGES
(100,000) messages, part by part, and of verify.py checking it.

The archive is built through the real write path, as tests/performance/test_bench_review.py
does: Meta-shaped webhook bodies (tests/performance/bench_review.py) stored as Delivery rows and
sealed by messaging.sequencer.process_deliveries(); then every document's bytes (incompressible,
BENCH_BUNDLE_MEDIA_BYTES each) are stored and sealed by messaging.media, and a checkpoint is
signed. The export is a search from 2000-01-01, i.e. every message.

The bundle is written in a child process, so that its peak RSS is its own: the child reports
its maximum resident set (ru_maxrss) after each part (pdf, csv, eml, rsmf, attachments, the
manifest with its proofs), and that of its largest helper (the PDF renderers are processes of
their own). The target is a peak under 500 MB whatever the size: every writer streams.
verify.py then checks the bundle with the system python3, also in a child of its own.

Environment: BENCH_BUNDLE_MESSAGES (100,000; the PDF alone is about 14,000 pages at that size),
BENCH_BUNDLE_PER_DELIVERY (100 messages per webhook body), BENCH_BUNDLE_MEDIA_BYTES (32,768),
BENCH_BUNDLE_PROFILE=1 to print a cProfile of the manifest part, BENCH_BUNDLE_FORMATS (pdf,csv,
eml,rsmf: the writers composed; those left out write nothing, e.g. to measure the rest alone).
"""

import cProfile
import hashlib
import itertools
import json
import os
import pstats
import resource
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings

from archive.checkpoints import create_checkpoint, verifier_key_text
from archive.models import Checkpoint
from exports import bundle, formats
from exports.scope import Scope
from exports.source import Source
from exports.target import zip_target
from messaging import media
from messaging.graph import Download
from messaging.models import Channel, Message
from messaging.sequencer import process_deliveries
from tests.conftest import TEST_DB, superuser_connect, wipe_archive
from tests.performance.bench_review import CHANNELS, NOW, Archive
from tests.performance.conftest import Figure, record, say, seconds, store_deliveries, table

ROOT = Path(__file__).resolve().parents[2]
VERIFY = ROOT / "exports" / "verifier" / "verify.py"
MESSAGES = int(os.environ.get("BENCH_BUNDLE_MESSAGES", "100000"))
PER_DELIVERY = int(os.environ.get("BENCH_BUNDLE_PER_DELIVERY", "100"))
MEDIA_BYTES = int(os.environ.get("BENCH_BUNDLE_MEDIA_BYTES", "32768"))
PROFILE = os.environ.get("BENCH_BUNDLE_PROFILE", "") not in ("", "0")
# The other formats to compose (a writer left out writes nothing: to measure the rest alone).
FORMATS = os.environ.get("BENCH_BUNDLE_FORMATS", "pdf,csv,eml,rsmf").split(",")
SEAL_DELIVERIES = 100  # Delivery rows stored between two process_deliveries() calls
TARGET_MB = 500
RESULT = "bench-bundle-result "


@dataclass
class Built:
    messages: int
    documents: int
    tree_size: int
    media_root: Path
    seconds: float


def seal_archive(archive: Archive) -> None:
    bodies = archive.deliveries(PER_DELIVERY)
    while chunk := list(itertools.islice(bodies, SEAL_DELIVERIES)):
        store_deliveries(chunk)
        process_deliveries()


def store_documents() -> int:
    """Each document's bytes, as the media fetcher stores them (content-addressed, sealed)."""
    stored = 0
    for message in Message.objects.filter(type="document").order_by("id").iterator():
        content = hashlib.shake_256(f"bench-document-{message.pk}".encode()).digest(MEDIA_BYTES)
        fetched = Download(content, hashlib.sha256(content).hexdigest(), "application/pdf")
        media._store(message, media.media_id_of(message), fetched, "application/pdf")
        stored += 1
    return stored


@pytest.fixture(scope="module")
def bundle_world(
    django_db_setup: None, django_db_blocker: Any, server_settings: str, tmp_path_factory: Any
) -> Iterator[Built]:
    media_root = tmp_path_factory.mktemp("bench-media")
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media_root):
        wipe_archive()
        try:
            say()
            say(f"== bundle archive: {MESSAGES:,} messages ({server_settings})")
            began = time.perf_counter()
            for channel in CHANNELS:
                Channel.objects.create(**channel)
            seal_archive(Archive(MESSAGES, big=min(5_000, MESSAGES // 2)))
            documents = store_documents()
            checkpoint = create_checkpoint()
            assert checkpoint is not None
            built = Built(
                MESSAGES, documents, checkpoint.tree_size, media_root, time.perf_counter() - began
            )
            say(f"   built in {seconds(built.seconds)}: {built.tree_size:,} ledger entries")
            yield built
        finally:
            connections.close_all()
            wipe_archive()
            with superuser_connect() as conn:  # what sealing queued (media fetches, lexicon scans)
                conn.execute("TRUNCATE django_q_ormq, django_q_task")


# --------------------------------------------------------------------------- the child process


def megabytes(kilobytes: int) -> float:
    return kilobytes / 1024


def peak_kib() -> int:
    """This process's own peak RSS (VmHWM, KiB). Not ru_maxrss: Linux carries that across fork
    and exec, so a child started by this 1 GB pytest process would report 1 GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_main(spec: dict[str, Any]) -> None:
    """Write the bundle (in a child process), timing each part; print the result as JSON."""
    for alias in ("default", "owner"):  # the test database, as tests/conftest.py points to it
        settings.DATABASES[alias]["NAME"] = TEST_DB
        connections[alias].settings_dict["NAME"] = TEST_DB
    parts: list[list[Any]] = []

    def timed(part: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            profiler = cProfile.Profile() if PROFILE and part == "manifest and proofs" else None
            result = profiler.runcall(call, *args, **kwargs) if profiler else call(*args, **kwargs)
            if profiler:
                pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
            helpers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            parts.append([part, time.perf_counter() - began, peak_kib(), helpers])
            return result

        return run

    real_writer = formats.writer

    def skipped(source: Source, target: Any, prefix: str = "") -> None:
        pass

    formats.writer = lambda fmt: timed(fmt, real_writer(fmt) if fmt in FORMATS else skipped)
    bundle.write_attachments = timed("attachments", bundle.write_attachments)
    bundle.write_manifest = timed("manifest and proofs", bundle.write_manifest)
    source = Source(
        export_id="bench-bundle",
        created_at=datetime.fromtimestamp(NOW, tz=UTC),
        requester="bench",
        scope=Scope.for_search({"date_from": "2000-01-01"}),
        checkpoint=Checkpoint.objects.get(tree_size=spec["tree_size"]),
    )
    parts.append(["(Django, before writing)", 0.0, peak_kib(), 0])
    began = time.perf_counter()
    with zip_target(Path(spec["zip"])) as target:
        bundle.write(source, target)
    total = time.perf_counter() - began
    result = {"parts": parts, "total": total, "rss": peak_kib(), "files": len(target.files)}
    sys.stdout.write(RESULT + json.dumps(result) + "\n")


def run_child(built: Built, path: Path) -> dict[str, Any]:
    spec = json.dumps({"tree_size": built.tree_size, "zip": str(path)})
    code = (
        "import django, json, sys; django.setup();"
        " from tests.performance.test_bench_bundle import child_main;"
        " child_main(json.loads(sys.argv[1]))"
    )
    env = {**os.environ, "MEDIA_ROOT": str(built.media_root)}
    done = subprocess.run(
        [sys.executable, "-c", code, spec], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if PROFILE:
        say("== cProfile of the manifest and its proofs (BENCH_BUNDLE_PROFILE)")
        say(done.stderr[done.stderr.find("   Ordered by") :])
    (line,) = [x for x in done.stdout.splitlines() if x.startswith(RESULT)]
    loaded: dict[str, Any] = json.loads(line.removeprefix(RESULT))
    return loaded


def run_verify(path: Path) -> tuple[int, float, int, str]:
    """verify.py under the system python3: exit code, seconds, peak RSS (KiB), its report."""
    code = (
        "import runpy, sys\n"
        "sys.argv = sys.argv[1:]\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as exit:\n    status = exit.code\n"
        "peak = [x for x in open('/proc/self/status') if x.startswith('VmHWM:')][0].split()[1]\n"
        "sys.stderr.write(f'\\n{status} {peak}\\n')\n"
    )
    began = time.perf_counter()
    done = subprocess.run(
        [
            "/usr/bin/python3",
            "-I",
            "-c",
            code,
            str(VERIFY),
            str(path),
            "--key",
            verifier_key_text(),
        ],
        capture_output=True,
        text=True,
    )
    spent = time.perf_counter() - began
    status, rss = done.stderr.split()[-2:]
    return int(status), spent, int(rss), done.stdout


# --------------------------------------------------------------------------- the benchmark


def composition(path: Path) -> str:
    """Files and megabytes per top-level folder (or file) of the bundle."""
    totals: dict[str, list[int]] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            tally = totals.setdefault(info.filename.split("/")[0], [0, 0, 0])
            tally[0] += 1
            tally[1] += info.file_size
            tally[2] += info.compress_size
    rows = [
        [name, f"{n:,}", f"{raw / 2**20:,.1f} MB", f"{packed / 2**20:,.1f} MB"]
        for name, (n, raw, packed) in sorted(totals.items(), key=lambda kv: -kv[1][1])
    ]
    return table(["folder or file", "files", "size", "compressed"], rows, title="== contents")


def test_bundle(bundle_world: Built, tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    result = run_child(bundle_world, path)
    rows, figures = [], []
    for part, spent, own, helpers in result["parts"]:
        if part in formats.FORMATS and part not in FORMATS:
            rows.append([part, "left out (BENCH_BUNDLE_FORMATS)", "", ""])
            continue
        shown = seconds(spent) if spent else ""
        rows.append([part, shown, f"{megabytes(own):,.0f} MB", f"{megabytes(helpers):,.0f} MB"])
        if spent:
            figures.append(Figure(f"bundle {MESSAGES:,} msgs: {part}", spent, "s"))
    rest = result["total"] - sum(p[1] for p in result["parts"])
    rows.append(["keys, VERIFY.md, SHA256SUMS, signature", seconds(rest), "", ""])
    rows.append(
        ["whole bundle", seconds(result["total"]), f"{megabytes(result['rss']):,.0f} MB", ""]
    )
    say(
        table(
            ["part", "time", "peak RSS so far", "largest helper (bound)"],
            rows,
            title=f"== evidence bundle of {bundle_world.messages:,} messages,"
            f" {bundle_world.documents:,} documents of {MEDIA_BYTES:,} bytes,"
            f" tree of {bundle_world.tree_size:,} entries: {result['files']:,} files,"
            f" {path.stat().st_size / 2**20:,.1f} MB",
        )
    )
    peak = megabytes(result["rss"])
    say(
        f"   peak RSS of the bundle process {peak:,.0f} MB:"
        f" {'within' if peak <= TARGET_MB else 'OVER'} {TARGET_MB} MB. A helper's figure (the PDF"
        " renderers) is ru_maxrss: an upper bound that includes the bundle process's size when"
        " it started them."
    )
    say(composition(path))
    status, spent, rss, report = run_verify(path)
    say(f"== verify.py (system python3): {seconds(spent)}, peak RSS {megabytes(rss):,.0f} MB")
    say(report)
    assert status == 0, report  # correctness, not speed: the bundle must verify
    for figure in figures:
        record(figure)
    record(Figure(f"bundle {MESSAGES:,} msgs: whole bundle", result["total"], "s"))
    record(Figure(f"bundle {MESSAGES:,} msgs: verify.py", spent, "s"))
