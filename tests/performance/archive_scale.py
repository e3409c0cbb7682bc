"""Benchmark archives of 10,000 to 10,000,000 messages, built once through the real sequencer
and kept between runs (issue 20).

Building 10,000,000 messages takes hours on this 2-core machine, so the archive is a
PostgreSQL cluster of its own under var/bench/scale-<size>/ (data/, run/, postgres.log), kept
stopped between runs and started by whatever opens it. What it holds is what
tests/performance/test_bench_review.py builds: the Meta-shaped webhook bodies of
tests/performance/bench_review.py (`Archive(n).deliveries(100)`, the same seed, so a 1M archive
here is the review benchmark's 1M archive), stored as Delivery rows as the webhook stores them
and sealed by messaging.sequencer.process_deliveries() (the ledger, the records, the search
vectors, retention records, conversation summaries: every index and trigger as in production),
with a signed checkpoint every 100,000 messages, then VACUUM ANALYZE. Nothing is written
around the sequencer.

What differs from `make run`, for build speed only: the cluster runs with fsync,
synchronous_commit and full_page_writes off (as the throwaway test clusters do); shared_buffers
6 GB (a quarter of the machine's RAM), max_wal_size 4 GB (1 GB kept after the build). Not for
speed: pg_prewarm's autoprewarm, which deploy/README.md asks of a firm's server too: the cluster is
stopped between runs, and without it every open began with empty shared buffers, so a
benchmark's first figures measured the disk (search at 10M right after a restart with the page
cache dropped: phrase + channel p95 947 ms, 233 ms with the buffers read back; docs/SCALE.md
§7j). An open waits for the read-back (4-33 s at 10M) and says how long it took;
BENCH_ARCHIVE_COLD=1 opens with empty buffers instead. Autovacuum
stays on, as in production: with it off the planner kept the statistics of the empty tables, and
at 4M messages the sequencer's duplicate lookup had turned into a scan of the whole channel
(2.4 s a batch, the build at 1,200 msg/s instead of 2,000; docs/SCALE.md §1). A benchmark that
needs durable commits starts it with CLIENTWINDOW_THROWAWAY_DURABLE=1.

The cache is keyed by a fingerprint of this builder's version and the generator's parameters
(`fingerprint`); a build interrupted part way resumes where it stopped (the generator is
deterministic: the bodies already stored are generated again and skipped). Migrations added
since the build are applied forward when the archive is opened; a migration whose file changed
since it was applied is migrated back and forward again (the placeholder migrations of issue 20
are being filled in while archives are cached).

    python -m tests.performance.archive_scale build 1M [--verify] [--profile]
    python -m tests.performance.archive_scale status
    python -m tests.performance.archive_scale env 1M      # start it; print DATABASE_* to export
    python -m tests.performance.archive_scale stop 1M

From a benchmark: `with open_archive("1M") as archive, archive.django(): ...` (read-only: the
archive as it is), `open_archive("1M", writable=True)`: a copy made with CREATE DATABASE …
TEMPLATE … STRATEGY FILE_COPY and dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import fcntl
import hashlib
import importlib.util
import io
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "var" / "bench"
BUILDER_VERSION = 1
PER_DELIVERY = 100  # messages per webhook body, as the review benchmark's archive
BIG = 5_000  # the one conversation of exactly this many messages (bench_review.BIG_WA_ID)
STORE_DELIVERIES = 100  # bodies stored between two process_deliveries() calls (= its BATCH)
CHECKPOINT_EVERY = 100_000
PORT = 5432  # the socket's name only: each archive's socket is in its own directory
DATABASE = "clientwindow"
SCRATCH = "clientwindow_scratch"
SERVER_SETTINGS = {
    "shared_buffers": "6GB",  # a quarter of this 24 GB machine: the usual advice
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "maintenance_work_mem": "512MB",
    # autoprewarm: shared buffers written to data/autoprewarm.blocks every 5 minutes and at a
    # stop, read back at the next start (start waits for it): each open starts where the last
    # one left off, as a server that runs for months does, not with empty buffers
    "shared_preload_libraries": "pg_prewarm",
}
KEPT_WAL = "1GB"
SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}


def size_of(label: str | int) -> tuple[str, int]:
    """("1M", 1_000_000) from "1M", "1m", "1000000" or 1000000."""
    if isinstance(label, int) or str(label).isdigit():
        n = int(label)
        named = [k for k, v in SIZES.items() if v == n]
        return (named[0] if named else str(n)), n
    for key, value in SIZES.items():
        if key.lower() == str(label).lower():
            return key, value
    raise SystemExit(f"archive_scale: unknown size {label!r} (one of {', '.join(SIZES)} or n)")


def fingerprint(messages: int) -> str:
    """What the archive's content depends on. bench_review.py's own text is recorded beside it
    (`generator_sha256`) but not part of it: an edit there that changes nothing generated
    must not cost a 10M rebuild; `status` says when it changed."""
    key = {
        "builder": BUILDER_VERSION,
        "messages": messages,
        "per_delivery": PER_DELIVERY,
        "big": BIG,
        "seed": 42,
        "checkpoint_every": CHECKPOINT_EVERY,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def generator_sha256() -> str:
    return hashlib.sha256((ROOT / "tests/performance/bench_review.py").read_bytes()).hexdigest()


def _localdev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("localdev", ROOT / "scripts" / "localdev.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("localdev", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


localdev = _localdev()


# --------------------------------------------------------------------------- the cluster


@dataclass
class Place:
    label: str
    messages: int

    @property
    def base(self) -> Path:
        return BENCH / f"scale-{self.label}"

    @property
    def info(self) -> Path:
        return self.base / "build.json"

    @property
    def log(self) -> Path:
        return BENCH / f"scale-{self.label}.log"

    @property
    def lock(self) -> Path:
        return BENCH / f"scale-{self.label}.lock"

    def cluster(self) -> Any:
        return localdev.Cluster(self.base, port=PORT, tcp=False)

    def built(self) -> dict[str, Any] | None:
        """The build record of a complete archive with the current fingerprint, else None."""
        try:
            info = json.loads(self.info.read_text())
        except (OSError, ValueError):
            return None
        ok = info.get("complete") and info.get("fingerprint") == fingerprint(self.messages)
        return info if ok else None


@contextlib.contextmanager
def locked(place: Place, *, wait: bool = True) -> Iterator[None]:
    """One process at a time per archive: a build, or a benchmark that opened it."""
    BENCH.mkdir(parents=True, exist_ok=True)
    with place.lock.open("a") as handle:
        flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(handle, flags)
        except BlockingIOError:
            raise SystemExit(f"archive_scale: {place.base} is in use (building?)") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start(place: Place) -> Any:
    """Start the archive's cluster (creating it if need be); stop it with `cluster.stop()`."""
    cluster = place.cluster()
    if not (cluster.data / "PG_VERSION").exists():
        shutil.rmtree(place.base, ignore_errors=True)
        BENCH.mkdir(parents=True, exist_ok=True)
        cluster.initdb()
        conf = cluster.data / "postgresql.auto.conf"
        extra = "".join(f"{k} = '{v}'\n" for k, v in SERVER_SETTINGS.items())
        conf.write_text(conf.read_text() + extra)
        cluster.start()
        cluster.bootstrap()
        return cluster
    if cluster.running():  # left by a process killed while it had the archive open
        cluster.stop()
    settle_settings(cluster)
    dump = cluster.data / "autoprewarm.blocks"
    if os.environ.get("BENCH_ARCHIVE_COLD") == "1":
        dump.unlink(missing_ok=True)  # empty buffers; the stop writes the dump again
    logged = cluster.log.stat().st_size if cluster.log.exists() else 0
    cluster.start()
    if dump.exists():
        prewarmed(cluster, logged)
    return cluster


def settle_settings(cluster: Any) -> None:
    """SERVER_SETTINGS an archive built before them lacks, added while it is stopped."""
    conf = cluster.data / "postgresql.auto.conf"
    text = conf.read_text()
    missing = [k for k in SERVER_SETTINGS if not re.search(rf"^{k}\s*=", text, re.M)]
    if missing:
        conf.write_text(text + "".join(f"{k} = '{SERVER_SETTINGS[k]}'\n" for k in missing))


PREWARM_WAIT = 900  # seconds: 6 GB of buffers read back at ~100 MB/s from a cold disk is 60 s


def prewarmed(cluster: Any, logged: int) -> None:
    """Wait until autoprewarm has read back the buffers its dump lists (the leader logs a line
    when every database's worker is done); say how many and how long it took."""
    began = time.monotonic()
    while time.monotonic() - began < PREWARM_WAIT:
        with cluster.log.open("rb") as log:
            log.seek(logged)
            done = re.search(rb"autoprewarm successfully prewarmed (\d+) of (\d+)", log.read())
        if done:
            loaded, listed = (int(n) for n in done.groups())
            sys.stderr.write(
                f"archive_scale: autoprewarm read back {loaded:,} of {listed:,} buffers"
                f" ({loaded * 8 / 1024:,.0f} MB) in {time.monotonic() - began:.1f} s\n"
            )
            return
        time.sleep(0.5)
    sys.stderr.write(f"archive_scale: autoprewarm not done after {PREWARM_WAIT} s; going on\n")


def environment(cluster: Any, database: str = DATABASE) -> dict[str, str]:
    """What manage.py needs to run on the archive (as localdev.database_env, any database)."""
    return {
        "DATABASE_URL": cluster.url(localdev.RUNTIME, database),
        "DATABASE_OWNER_URL": cluster.url(localdev.OWNER, database),
        "DATABASE_SUPERUSER_URL": cluster.url(localdev.SUPERUSER, database),
        "DATABASE_AUDITOR_ROLE": localdev.AUDITOR,
        "CLIENTWINDOW_LOCAL": "1",
        "DJANGO_SETTINGS_MODULE": "clientwindow.settings",
    }


def manage(cluster: Any, *args: str, database: str = DATABASE) -> None:
    env = {**os.environ, **environment(cluster, database)}
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        done.check_returncode()


# --------------------------------------------------------------------------- migrations


def migration_files() -> dict[str, str]:
    """{"app.name": sha256 of its file} for every migration in the tree."""
    found = {}
    for path in sorted(ROOT.glob("*/migrations/0*.py")):
        found[f"{path.parent.parent.name}.{path.stem}"] = hashlib.sha256(
            path.read_bytes()
        ).hexdigest()
    return found


def migrate_forward(place: Place, cluster: Any) -> list[str]:
    """Apply what is new since the archive was built or last opened; a migration whose file
    changed since it was applied is migrated back (to its predecessor) and forward again.
    Returns what was redone."""
    recorded_path = place.base / "migrations.json"
    try:
        recorded: dict[str, str] = json.loads(recorded_path.read_text())
    except (OSError, ValueError):
        recorded = {}
    current = migration_files()
    changed = sorted(k for k, v in recorded.items() if current.get(k, v) != v)
    for key in sorted(changed, reverse=True):  # the latest first
        app = key.split(".", 1)[0]
        before = sorted(k for k in current if k.startswith(app + ".") and k < key)
        target = before[-1].split(".", 1)[1] if before else "zero"
        back = ["migrate", app, target, "--database", "owner", "--no-input", "-v", "0"]
        try:
            manage(cluster, *back)
        except subprocess.CalledProcessError:
            # Its new reverse cannot undo what its old version did (a placeholder did nothing):
            # marked unapplied, and applied again below. The post-migrate hooks that follow a
            # fake may fail on the models it adds (their tables come with it): not a reason to
            # stop before applying it.
            with contextlib.suppress(subprocess.CalledProcessError):
                manage(cluster, *back, "--fake")
    manage(cluster, "migrate", "--database", "owner", "--no-input", "-v", "0")
    recorded_path.write_text(json.dumps(current, indent=1) + "\n")
    import psycopg

    where = {"host": str(cluster.run_dir), "port": PORT, "user": "postgres", "dbname": DATABASE}
    with psycopg.connect(**where) as conn:
        applied = conn.execute("SELECT app || '.' || name FROM django_migrations").fetchall()
    ours = {key.split(".", 1)[0] for key in current}  # the project's apps, not the libraries'
    gone = sorted(n for (n,) in applied if n.split(".", 1)[0] in ours and n not in current)
    if gone:
        # Applied here and since deleted from the tree (an experiment reverted): what it did
        # stays in the archive, and nothing here can undo it. The 10M archive kept a statistics
        # target of 1,000 this way for a session, and its plans were not main's (SCALE.md §7d).
        warning = (
            f"WARNING: the {place.label} archive has migrations applied that the tree no longer"
            f" has: {', '.join(gone)}. Undo what they did by hand (or rebuild the archive)"
            " before trusting its figures."
        )
        say(place, warning)
        sys.stderr.write(warning + "\n")
    return changed


# --------------------------------------------------------------------------- opening


@dataclass
class ScaleArchive:
    """An opened archive: where it is, what was built, and how to point Django at it."""

    label: str
    messages: int
    cluster: Any
    database: str
    build: dict[str, Any] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return environment(self.cluster, self.database)

    def connect(self, role: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            host=str(self.cluster.run_dir),
            port=PORT,
            user=role,
            dbname=self.database,
            autocommit=True,
        )

    @contextlib.contextmanager
    def django(self) -> Iterator[None]:
        """Django's default (runtime) and owner connections on this archive, then back."""
        from django.conf import settings
        from django.db import connections

        roles = {"default": localdev.RUNTIME, "owner": localdev.OWNER}
        saved = {}
        for alias, role in roles.items():
            if alias not in connections:
                continue
            connections[alias].close()
            saved[alias] = dict(connections[alias].settings_dict)
            change = {
                "HOST": str(self.cluster.run_dir),
                "PORT": str(PORT),
                "NAME": self.database,
                "USER": role,
                "PASSWORD": "",
            }
            connections[alias].settings_dict.update(change)
            settings.DATABASES[alias].update(change)
        try:
            yield
        finally:
            for alias, values in saved.items():
                connections[alias].close()
                connections[alias].settings_dict.update(values)
                settings.DATABASES[alias].update(values)


@contextlib.contextmanager
def open_archive(size: str | int, *, writable: bool = False) -> Iterator[ScaleArchive]:
    """Start a cached archive (building it first if there is none: hours at 10M), with the
    tree's migrations applied; `writable`: on a copy that is dropped afterwards."""
    label, messages = size_of(size)
    place = Place(label, messages)
    if place.built() is None:
        subprocess.run(
            [sys.executable, "-m", "tests.performance.archive_scale", "build", label],
            cwd=ROOT,
            check=True,
        )
    with locked(place):
        cluster = start(place)
        try:
            try:
                migrate_forward(place, cluster)
            except subprocess.CalledProcessError as exc:
                # The tree is worked on in parallel: a model whose migration is not written yet
                # should not stop every benchmark; what the schema lacks, the figures show.
                sys.stderr.write(f"archive_scale: migrate failed ({exc}); the archive as it is\n")
            with cluster.connect() as conn:  # an archive built before 880235e kept 4 GB of WAL
                conn.execute(f"ALTER SYSTEM SET max_wal_size = '{KEPT_WAL}'")
                conn.execute("SELECT pg_reload_conf()")
            build = place.built() or {}
            if not writable:
                yield ScaleArchive(label, messages, cluster, DATABASE, build)
                return
            with scratch_copy(cluster):
                yield ScaleArchive(label, messages, cluster, SCRATCH, build)
        finally:
            cluster.stop()


@contextlib.contextmanager
def scratch_copy(cluster: Any) -> Iterator[float]:
    """A copy of the archive's database for a benchmark that writes; yields the copy's cost."""
    from psycopg import sql

    with cluster.connect() as conn:
        size = conn.execute("SELECT pg_database_size(%s)", [DATABASE]).fetchone()[0]
        free = shutil.disk_usage(cluster.data).free
        if free < size * 1.2:
            raise SystemExit(
                f"archive_scale: a copy needs {size / 1e9:.1f} GB, {free / 1e9:.1f} GB free"
            )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(SCRATCH)))
        began = time.perf_counter()
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(SCRATCH), sql.Identifier(DATABASE)
            )
        )
        spent = time.perf_counter() - began
    try:
        yield spent
    finally:
        with cluster.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH))
            )


# --------------------------------------------------------------------------- the build


@dataclass
class Progress:
    """Where the time of a build goes, per segment of CHECKPOINT_EVERY messages."""

    generating: float = 0.0
    storing: float = 0.0
    sealing: float = 0.0
    checkpointing: float = 0.0
    segments: list[dict[str, float]] = field(default_factory=list)


def build(place: Place, *, verify: bool, profile: bool) -> None:
    """Create (or resume) the archive: runs in a process whose Django points at its cluster."""
    with locked(place, wait=False):
        info = _read_info(place)
        if info.get("fingerprint") not in (None, fingerprint(place.messages)):
            say(place, "the cached archive's fingerprint differs: rebuilding from scratch")
            place.cluster().stop()
            shutil.rmtree(place.base)
        elif info.get("complete"):
            say(place, f"{place.base} is built already ({place.messages:,} messages)")
            return
        free = shutil.disk_usage(ROOT / "var").free
        say(
            place, f"building {place.messages:,} messages in {place.base}; {free / 1e9:.0f} GB free"
        )
        cluster = start(place)
        try:
            with cluster.connect() as conn:
                conn.execute(f"ALTER SYSTEM SET max_wal_size = '{SERVER_SETTINGS['max_wal_size']}'")
                conn.execute("SELECT pg_reload_conf()")
            migrate_forward(place, cluster)
            place.base.joinpath("build.json").write_text(
                json.dumps({"fingerprint": fingerprint(place.messages), "complete": False}) + "\n"
            )
            env = environment(cluster)
            command = [sys.executable, "-m", "tests.performance.archive_scale", "_seal"]
            command += [place.label, *(["--profile"] if profile else [])]
            subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, check=True)
            with cluster.connect() as conn:
                conn.execute("ALTER SYSTEM RESET autovacuum")  # off in builds before 4 Dec
                # the cache keeps 1 GB of WAL, not the build's 4 GB
                conn.execute(f"ALTER SYSTEM SET max_wal_size = '{KEPT_WAL}'")
                conn.execute("SELECT pg_reload_conf()")
                conn.execute("CHECKPOINT")
            if verify:
                began = time.perf_counter()
                manage(cluster, "verify_archive", "--no-record")
                info = _read_info(place)
                info["verify_s"] = time.perf_counter() - began
                place.info.write_text(json.dumps(info, indent=1) + "\n")
                say(place, f"verify_archive: intact, {info['verify_s']:,.0f} s")
        finally:
            cluster.stop()


def _read_info(place: Place) -> dict[str, Any]:
    try:
        return dict(json.loads(place.info.read_text()))
    except (OSError, ValueError):
        return {}


def say(place: Place, text: str) -> None:
    line = f"{time.strftime('%H:%M:%S')} {text}"
    print(line, flush=True)  # noqa: T201
    with place.log.open("a") as log:
        log.write(line + "\n")


def seal(place: Place, *, profile: bool) -> None:
    """The build itself (in the child process, Django on the archive's cluster)."""
    import django

    django.setup()
    from archive.checkpoints import create_checkpoint
    from messaging.models import Channel, Delivery
    from messaging.sequencer import process_deliveries
    from tests.performance.bench_review import CHANNELS, Archive
    from tests.performance.conftest import store_deliveries

    for channel in CHANNELS:
        Channel.objects.get_or_create(phone_number_id=channel["phone_number_id"], defaults=channel)
    process_deliveries()  # what an interrupted build stored but did not seal
    done = Delivery.objects.count()
    archive = Archive(place.messages, big=BIG)
    bodies = archive.deliveries(PER_DELIVERY)
    progress = Progress()
    began = time.perf_counter()
    if done:
        for _ in zip(range(done), bodies, strict=False):
            pass
        progress.generating = time.perf_counter() - began
        say(
            place,
            f"resuming after {done:,} deliveries ({archive.stats.messages:,} messages;"
            f" {progress.generating:,.0f} s to generate them again)",
        )
    profiler = cProfile.Profile() if profile else None
    segment = {"at": time.perf_counter(), "messages": archive.stats.messages}
    next_checkpoint = (archive.stats.messages // CHECKPOINT_EVERY + 1) * CHECKPOINT_EVERY
    while True:
        t0 = time.perf_counter()
        chunk = [b for _, b in zip(range(STORE_DELIVERIES), bodies, strict=False)]
        t1 = time.perf_counter()
        if not chunk:
            break
        store_deliveries(chunk)
        t2 = time.perf_counter()
        if profiler:
            profiler.enable()
        sealed = process_deliveries()
        if profiler:
            profiler.disable()
        t3 = time.perf_counter()
        assert sealed == len(chunk), (sealed, len(chunk))
        progress.generating += t1 - t0
        progress.storing += t2 - t1
        progress.sealing += t3 - t2
        if archive.stats.messages >= next_checkpoint:
            t4 = time.perf_counter()
            create_checkpoint()
            progress.checkpointing += time.perf_counter() - t4
            next_checkpoint += CHECKPOINT_EVERY
            _report(place, archive.stats.messages, segment, progress)
    create_checkpoint()  # the tail (bodies generated before the last CHECKPOINT_EVERY mark)
    if not progress.segments or progress.segments[-1]["messages"] < archive.stats.messages:
        _report(place, archive.stats.messages, segment, progress)
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
        say(place, "cProfile of process_deliveries():\n" + out.getvalue())
    _finish(place, archive, progress, time.perf_counter() - began)


def _report(place: Place, messages: int, segment: dict[str, float], progress: Progress) -> None:
    now = time.perf_counter()
    rate = (messages - segment["messages"]) / (now - segment["at"])
    eta = (place.messages - messages) / rate if rate else 0
    row = {
        "messages": messages,
        "rate": rate,
        "generating": progress.generating,
        "storing": progress.storing,
        "sealing": progress.sealing,
        "checkpointing": progress.checkpointing,
    }
    progress.segments.append(row)
    say(
        place,
        f"{messages:>11,} sealed  {rate:7,.0f} msg/s this segment  ETA {eta / 60:6,.0f} min"
        f"  (so far: generate {progress.generating:,.0f} s, store {progress.storing:,.0f} s,"
        f" seal {progress.sealing:,.0f} s, checkpoint {progress.checkpointing:,.0f} s)",
    )
    segment["at"], segment["messages"] = now, messages


def _finish(place: Place, archive: Any, progress: Progress, wall: float) -> None:
    from django.db import connection

    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT size FROM archive_chainhead WHERE id = 1")
        entries = cursor.fetchone()[0]
    owner = localdev.OWNER
    import psycopg
    from django.conf import settings

    conf = settings.DATABASES["default"]
    with psycopg.connect(
        host=conf["HOST"], port=conf["PORT"], user="postgres", dbname=conf["NAME"], autocommit=True
    ) as conn:
        conn.execute("VACUUM (ANALYZE)")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    vacuum = time.perf_counter() - began
    info = {
        "fingerprint": fingerprint(place.messages),
        "complete": True,
        "builder": BUILDER_VERSION,
        "generator_sha256": generator_sha256(),
        "messages": archive.stats.messages,
        "stats": asdict(archive.stats),
        "ledger_entries": entries,
        "database_bytes": size,
        "wall_s": wall,
        "vacuum_analyze_s": vacuum,
        "owner": owner,
        **{k: v for k, v in asdict(progress).items()},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    place.info.write_text(json.dumps(info, indent=1) + "\n")
    say(
        place,
        f"built {archive.stats.messages:,} messages, {entries:,} ledger entries,"
        f" {size / 1e9:.2f} GB in {wall / 60:,.1f} min (+ VACUUM ANALYZE {vacuum:,.0f} s)",
    )


# --------------------------------------------------------------------------- CLI


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="archive_scale", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "status", "env", "stop", "_seal"])
    parser.add_argument("size", nargs="?", default="1M")
    parser.add_argument("--verify", action="store_true", help="run verify_archive after it")
    parser.add_argument("--profile", action="store_true", help="cProfile the sealing")
    args = parser.parse_args(argv)
    if args.command == "status":
        for label, n in SIZES.items():
            place = Place(label, n)
            info = _read_info(place)
            state = "built" if place.built() else "partial" if info else "absent"
            stale = info.get("generator_sha256") not in (None, generator_sha256())
            extra = " (bench_review.py changed since)" if stale else ""
            print(f"{label:>5}: {state}{extra}  {place.base}")  # noqa: T201
        return 0
    place = Place(*size_of(args.size))
    if args.command == "build":
        build(place, verify=args.verify, profile=args.profile)
    elif args.command == "_seal":
        seal(place, profile=args.profile)
    elif args.command == "env":
        cluster = start(place)
        for key, value in environment(cluster).items():
            print(f"export {key}='{value}'")  # noqa: T201
    elif args.command == "stop":
        place.cluster().stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
