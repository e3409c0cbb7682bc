"""Evidence bundle benchmark: time and peak memory of bundles of several sizes from one archive
of BENCH_BUNDLE_MESSAGES (18,000) messages, part by part, beside a bare ZIP of the same bytes,
and of verify.py checking each.

The archive is built through the real write path, as tests/performance/test_bench_review.py
does: Meta-shaped webhook bodies (tests/performance/bench_review.py) stored as Delivery rows and
sealed by messaging.sequencer.process_deliveries(); then every document's bytes (incompressible,
BENCH_BUNDLE_MEDIA_BYTES each) are stored and sealed by messaging.media, and a checkpoint is
signed. Each export is a search from a date: the newest N messages, for each N of
BENCH_BUNDLE_SIZES (a ninth, a third and all of the archive by default), so that the peak RSS
can be read at three sizes in one run: flat is the target (exports/bundle.py streams every
list that grew with the export: EML and RSMF nested, files listed on disk, no ZipInfo kept).

Each bundle is written in a child process, so that its peak RSS is its own: the child reports
its maximum resident set (VmHWM) after each part (pdf, csv, eml, rsmf, attachments, the
manifest with its proofs), and that of its largest helper (the PDF renderers are processes of
their own). The sum of the two is a bound (a loose one: a helper's ru_maxrss starts at the RSS
of the process that started it); "whole (PSS)" is what the child and its renderers held
together at their highest, sampled every 50 ms (TreePeak). The target is 500 MB. The ceiling
is a bare ZIP of the same bytes: the bundle's members copied into a new ZIP by zipfile, in a
child of its own. verify.py then checks the bundle with the system python3, also in a child.

Environment: BENCH_BUNDLE_MESSAGES (18,000), BENCH_BUNDLE_SIZES (comma-separated message
counts, default messages/9, messages/3, messages), BENCH_BUNDLE_PER_DELIVERY (100 messages per
webhook body), BENCH_BUNDLE_MEDIA_BYTES (32,768), BENCH_BUNDLE_PROFILE=1 to print a cProfile
of the manifest part (or a part's name: csv, eml, rsmf, pdf, attachments),
BENCH_BUNDLE_FORMATS (csv,eml,rsmf by default; add pdf for the PDF, about 145 pages per 1,000
messages at 7-10 pages/s: it dominates the time).

Time here (2 cores shared with five other runs): the archive builds at 250-600 messages/s
through the sequencer; a bundle without the PDF at 7-40 messages/s, most of it a fixed ~30 ms per
conversation per format pass (every writer re-reads and decorates its rows) plus the EML and RSMF
writers; since short conversations are read together (exports/source.py) the 6,000-message
bundle takes a third of that time (docs/EXPORTS.md). The default run takes about 40 minutes at
that load. The documented 1M run,
`BENCH_BUNDLE_MESSAGES=1000000 BENCH_BUNDLE_SIZES=1000000`, builds for ~30 minutes and exports
for ~7 hours; `BENCH_BUNDLE_ZIP_MEMBERS=1000000 ... -k nested_zip` measures the million-file
part alone in ~10 minutes. Figures: docs/EXPORTS.md.
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
from messaging import media
from messaging.graph import Download
from messaging.models import Channel, Message
from messaging.sequencer import process_deliveries
from tests.conftest import TEST_DB, superuser_connect, wipe_archive
from tests.performance.bench_review import CHANNELS, NOW, YEAR, Archive
from tests.performance.conftest import Figure, record, say, seconds, store_deliveries, table
from tests.performance.test_bench_capture import TreePeak

ROOT = Path(__file__).resolve().parents[2]
VERIFY = ROOT / "exports" / "verifier" / "verify.py"
MESSAGES = int(os.environ.get("BENCH_BUNDLE_MESSAGES", "18000"))
SIZES = [
    int(n)
    for n in os.environ.get(
        "BENCH_BUNDLE_SIZES", f"{MESSAGES // 9},{MESSAGES // 3},{MESSAGES}"
    ).split(",")
]
PER_DELIVERY = int(os.environ.get("BENCH_BUNDLE_PER_DELIVERY", "100"))
MEDIA_BYTES = int(os.environ.get("BENCH_BUNDLE_MEDIA_BYTES", "32768"))
# "1": the manifest and its proofs; or a part's name (csv, eml, rsmf, pdf, attachments)
PROFILE = {"": "", "0": "", "1": "manifest and proofs"}.get(
    os.environ.get("BENCH_BUNDLE_PROFILE", ""), os.environ.get("BENCH_BUNDLE_PROFILE", "")
)
# The other formats to compose (a writer left out writes nothing: to measure the rest alone).
FORMATS = os.environ.get("BENCH_BUNDLE_FORMATS", "csv,eml,rsmf").split(",")
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
            profiler = cProfile.Profile() if part == PROFILE else None
            result = profiler.runcall(call, *args, **kwargs) if profiler else call(*args, **kwargs)
            if profiler:
                stats = pstats.Stats(profiler, stream=sys.stderr)
                stats.sort_stats("cumulative").print_stats(45)
                stats.sort_stats("tottime").print_stats(20)
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
        scope=Scope.for_search({"date_from": spec["date_from"]}),
        checkpoint=Checkpoint.objects.get(tree_size=spec["tree_size"]),
    )
    parts.append(["(Django, before writing)", 0.0, peak_kib(), 0])
    began = time.perf_counter()
    with bundle.zip_stream(Path(spec["zip"])) as target:  # as exports/jobs.py writes it
        bundle.write(source, target)
    total = time.perf_counter() - began
    result = {
        "parts": parts,
        "total": total,
        "rss": peak_kib(),
        "files": target.count,
        "messages": source.count(),
    }
    sys.stdout.write(RESULT + json.dumps(result) + "\n")


def date_from(messages: int) -> str:
    """The first day of the newest `messages` of the archive (bench_review spreads them evenly
    over the year before NOW)."""
    start = NOW - YEAR + (MESSAGES - messages) * YEAR / MESSAGES
    return datetime.fromtimestamp(start, tz=UTC).date().isoformat()


def run_child(built: Built, path: Path, messages: int) -> dict[str, Any]:
    spec = json.dumps(
        {"tree_size": built.tree_size, "zip": str(path), "date_from": date_from(messages)}
    )
    code = (
        "import django, json, sys; django.setup();"
        " from tests.performance.test_bench_bundle import child_main;"
        " child_main(json.loads(sys.argv[1]))"
    )
    env = {**os.environ, "MEDIA_ROOT": str(built.media_root)}
    child = subprocess.Popen(
        [sys.executable, "-c", code, spec],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with TreePeak(child.pid) as peak:  # the whole export: the child and its PDF renderers
        stdout, stderr = child.communicate()
    assert child.returncode == 0, stderr[-3000:]
    if PROFILE:
        say(f"== cProfile of the part {PROFILE!r} (BENCH_BUNDLE_PROFILE)")
        say(stderr[stderr.find("   Ordered by") :])
    (line,) = [x for x in stdout.splitlines() if x.startswith(RESULT)]
    loaded: dict[str, Any] = json.loads(line.removeprefix(RESULT))
    return {**loaded, "tree_kb": peak.kb}


def peak_code(body: str) -> str:
    """A child's script that runs `body` and prints its own peak RSS (VmHWM, KiB) last."""
    return (
        f"{body}\n"
        "peak = [x for x in open('/proc/self/status') if x.startswith('VmHWM:')][0].split()[1]\n"
        "sys.stderr.write(f'\\n{status} {peak}\\n')\n"
    )


# verify.py run as `python3 verify.py …` would run it, its exit status kept for peak_code
VERIFY_PY = (
    "import runpy, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
    "except SystemExit as exit:\n    status = exit.code"
)


def system_python(body: str, *args: str) -> tuple[int, float, int, str]:
    """`body` under the system python3 with `args`: exit status, seconds, peak RSS (KiB), its
    standard output."""
    began = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", peak_code(body), *args], capture_output=True, text=True
    )
    spent = time.perf_counter() - began
    assert done.returncode == 0, done.stderr[-2000:]  # the child itself, not `body`'s status
    status, rss = done.stderr.split()[-2:]
    return int(status), spent, int(rss), done.stdout


def run_verify(
    path: Path, key: str | None = None, script: Path = VERIFY
) -> tuple[int, float, int, str]:
    """verify.py (or `script`) under the system python3, pinned to `key` (the archive's by
    default): exit code, seconds, peak RSS (KiB), its report."""
    return system_python(VERIFY_PY, str(script), str(path), "--key", key or verifier_key_text())


def run_bare_zip(path: Path, copy: Path) -> tuple[float, int]:
    """The ceiling: the bundle's members, read and deflated into a new ZIP by zipfile, with
    nothing rendered or proved (seconds, peak RSS in KiB)."""
    body = (
        "import shutil, sys, zipfile\n"
        "with zipfile.ZipFile(sys.argv[1]) as src, zipfile.ZipFile(sys.argv[2], 'x',"
        " zipfile.ZIP_DEFLATED, allowZip64=True) as dst:\n"
        "    for info in src.infolist():\n"
        "        with src.open(info) as i, dst.open(info.filename, 'w', force_zip64=True) as o:\n"
        "            shutil.copyfileobj(i, o, 1 << 20)\n"
        "status = 0"
    )
    _, spent, rss, _ = system_python(body, str(path), str(copy))
    return spent, rss


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
    return table(["folder or file", "files", "size", "stored"], rows, title="== contents")


def parts_table(result: dict[str, Any], title: str) -> str:
    rows = []
    for part, spent, own, helpers in result["parts"]:
        if part in formats.FORMATS and part not in FORMATS:
            rows.append([part, "left out (BENCH_BUNDLE_FORMATS)", "", ""])
            continue
        shown = seconds(spent) if spent else ""
        rows.append([part, shown, f"{megabytes(own):,.0f} MB", f"{megabytes(helpers):,.0f} MB"])
    rest = result["total"] - sum(p[1] for p in result["parts"])
    rows.append(["keys, VERIFY.md, SHA256SUMS, signature", seconds(rest), "", ""])
    rows.append(
        ["whole bundle", seconds(result["total"]), f"{megabytes(result['rss']):,.0f} MB", ""]
    )
    headers = ["part", "time", "peak RSS so far", "largest helper (bound)"]
    return table(headers, rows, title=title)


def test_bundle(bundle_world: Built, tmp_path: Path) -> None:
    summary = []
    for size in SIZES:
        path = tmp_path / f"bundle-{size}.zip"
        result = run_child(bundle_world, path, size)
        messages, megs = result["messages"], path.stat().st_size / 2**20
        helpers = max(p[3] for p in result["parts"])
        say(
            parts_table(
                result,
                f"== evidence bundle of {messages:,} messages (scope from {date_from(size)}),"
                f" tree of {bundle_world.tree_size:,} entries: {result['files']:,} files,"
                f" {megs:,.1f} MB",
            )
        )
        say(composition(path))
        bare, bare_rss = run_bare_zip(path, tmp_path / f"bare-{size}.zip")
        status, spent, rss, report = run_verify(path)
        say(f"== verify.py (system python3): {seconds(spent)}, peak RSS {megabytes(rss):,.0f} MB")
        say(report)
        assert status == 0, report  # correctness, not speed: the bundle must verify
        summary.append(
            [
                f"{messages:,}",
                seconds(result["total"]),
                f"{megabytes(result['rss']):,.0f} MB",
                f"{megabytes(helpers):,.0f} MB",
                f"{megabytes(result['rss'] + helpers):,.0f} MB",
                f"{megabytes(result['tree_kb']):,.0f} MB",
                f"{result['files']:,}",
                f"{megs:,.0f} MB",
                f"{seconds(bare)}, {megabytes(bare_rss):,.0f} MB",
                f"{seconds(spent)}, {megabytes(rss):,.0f} MB",
            ]
        )
        record(
            Figure(
                f"bundle {messages:,} msgs: whole bundle", result["total"], "s", bare, "bare zip"
            )
        )
        record(Figure(f"bundle {messages:,} msgs: verify.py", spent, "s"))
        path.unlink()
        (tmp_path / f"bare-{size}.zip").unlink()
    headers = ["messages", "time", "peak RSS", "helper", "sum", "whole (PSS)", "files", "size",
               "bare zip", "verify.py"]  # fmt: skip
    say(table(headers, summary, title=f"== bundles by size (formats {','.join(FORMATS)});"
              f" target: peak RSS <= {TARGET_MB} MB and flat"))  # fmt: skip


# --------------------------------------------------------------------------- one million files

ZIP_MEMBERS = int(os.environ.get("BENCH_BUNDLE_ZIP_MEMBERS", "200000"))
EML_BYTES = 2_600  # the benchmark archive's e-mails average ~2.5 KB


def zip_child(kind: str, path: Path) -> tuple[float, int]:
    """ZIP_MEMBERS e-mail-sized files nested in a bundle-like ZIP, by ZipStream (what the
    bundle does) or by zipfile (what it did); seconds and peak RSS (KiB) of a child process."""
    code = peak_code(
        "import sys, time, zipfile, django\n"
        "django.setup()\n"
        "from pathlib import Path\n"
        "from exports import bundle\n"
        "kind, path, members, size = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]),"
        " int(sys.argv[4])\n"
        "body = (b'Subject: bench\\r\\n' * size)[:size]\n"
        "began = time.perf_counter()\n"
        "with bundle.zip_stream(path) as outer, outer.open('eml.zip') as sink:\n"
        "    if kind == 'stream':\n"
        "        nested = bundle.ZipStream(sink, seekable=False)\n"
        "        for n in range(members):\n"
        "            with nested.open(f'eml/c/{n}.eml') as out:\n"
        "                out.write(body + str(n).encode())\n"
        "        nested.close()\n"
        "    else:\n"
        "        with zipfile.ZipFile(sink, 'w', zipfile.ZIP_DEFLATED) as nested:\n"
        "            for n in range(members):\n"
        "                nested.writestr(f'eml/c/{n}.eml', body + str(n).encode())\n"
        "print(time.perf_counter() - began)\n"
        "status = 0"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, kind, str(path), str(ZIP_MEMBERS), str(EML_BYTES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.split()[-1]), int(done.stderr.split()[-1])


def test_nested_zip_of_many_files(tmp_path: Path) -> None:
    """The bundle's EML part alone at BENCH_BUNDLE_ZIP_MEMBERS files (200,000; the documented
    run is 1,000,000): ZipStream beside zipfile writing the same nested archive."""
    rows = []
    for kind in ("stream", "zipfile"):
        path = tmp_path / f"{kind}.zip"
        spent, rss = zip_child(kind, path)
        with zipfile.ZipFile(path) as outer, outer.open("eml.zip") as raw:
            nested = zipfile.ZipFile(raw)
            assert len(nested.infolist()) == ZIP_MEMBERS  # correctness: every file is there
        rows.append([kind, seconds(spent), f"{megabytes(rss):,.0f} MB",
                     f"{path.stat().st_size / 2**20:,.0f} MB"])  # fmt: skip
        record(Figure(f"nested zip of {ZIP_MEMBERS:,} files: {kind}", spent, "s"))
        path.unlink()
    title = f"== {ZIP_MEMBERS:,} files of {EML_BYTES:,} bytes nested in a bundle"
    say(table(["writer", "time", "peak RSS", "size"], rows, title=title))
