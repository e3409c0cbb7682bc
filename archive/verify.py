"""verify_archive: re-check everything the ledger promises, streaming, without trusting caches.

In one REPEATABLE READ snapshot: the per-entry checks of archive/chain_check.py (contiguous seq,
canonical envelopes, leaf hashes, links, content commitments), run in parallel worker processes
on large ledgers; then, over the recomputed leaf hashes, every checkpoint's RFC 6962 root and
signature (and those of checkpoints saved outside the database), the stored Merkle nodes, and the
chain head.
"""

import math
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from archive import checkpoints as cp
from archive import signing
from archive.chain_check import MAX_PROBLEMS, ChunkResult, Problem, check_range, check_range_on
from archive.envelope import rfc3339
from archive.ledger import NODE_MIN_LEVEL
from archive.merkle import CompactRange
from archive.models import VerificationRun

__all__ = ["Problem", "Report", "record_run", "verify_ledger"]

# Below this many entries one process is quicker than starting workers.
PARALLEL_MIN_ENTRIES = 100_000
CHUNK_MAX_ENTRIES = 250_000


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    contents: int = 0
    nodes: int = 0
    workers: int = 1
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    # Per database checkpoint (by tree size): what anchors it outside the database, e.g.
    # {"timestamp": "...", "published": "...", "cosignatures": "..."}, for the report.
    anchors: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        """The first problem in ledger order."""
        return self.problems[0] if self.problems else None

    @property
    def first_bad_seq(self) -> int | None:
        return min((p.seq for p in self.problems if p.seq is not None), default=None)

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def sort_problems(self) -> None:
        """Ledger order: a checkpoint's problem sits at the last entry it covers."""

        def position(problem: Problem) -> float:
            if problem.seq is not None:
                return problem.seq
            return problem.checkpoint - 1 if problem.checkpoint is not None else math.inf

        self.problems = sorted(self.problems, key=position)[:MAX_PROBLEMS]

    def as_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "contents_checked": self.contents,
            "merkle_nodes_checked": self.nodes,
            "workers": self.workers,
            "seconds": round(self.seconds, 3),
            "first_bad_seq": self.first_bad_seq,
            "problems": [
                {"seq": p.seq, "checkpoint": p.checkpoint, "what": p.what} for p in self.problems
            ],
            "anchors": [
                {"tree_size": size, **found} for size, found in sorted(self.anchors.items())
            ],
        }


@dataclass(frozen=True)
class CheckpointRow:
    """A checkpoint to check against the recomputed tree: a row of archive_checkpoint, or a
    note kept outside the database (an auditor's saved copy, or a published one)."""

    tree_size: int
    root: bytes
    note: str
    created_at: datetime | None = None  # a database row's; copies have none of their own
    source: str = "database"  # "database", "saved" or "published"

    @property
    def label(self) -> str:
        """How a problem names a copy ("" for the database's own checkpoint)."""
        return "" if self.source == "database" else f"the {self.source} checkpoint "


class _TreeWalk:
    """Rebuilds the Merkle tree from recomputed leaves, checking checkpoints and stored nodes."""

    def __init__(
        self,
        report: Report,
        checkpoints: list[CheckpointRow],
        nodes: dict[tuple[int, int], bytes],
    ) -> None:
        self.report, self.nodes, self.frontier = report, nodes, CompactRange()
        self.roots: dict[int, bytes] = {}  # the recomputed root at each checkpoint's size
        self.pending = iter(checkpoints)
        self.next_cp = next(self.pending, None)
        self.verifiers = cp.verifiers() if checkpoints else []

    def leaves(self, blob: bytes) -> None:
        frontier, nodes, add = self.frontier, self.nodes, self.report.add
        for offset in range(0, len(blob), 32):
            for level, index, node in frontier.append(blob[offset : offset + 32]):
                if level >= NODE_MIN_LEVEL and nodes.pop((level, index), None) != node:
                    add(
                        Problem(
                            f"stored Merkle node {level}/{index} is wrong or missing",
                            frontier.size - 1,
                        )
                    )
            while self.next_cp is not None and self.next_cp.tree_size <= frontier.size:
                if self.next_cp.tree_size == frontier.size:
                    self.roots[frontier.size] = frontier.root()
                    _check_checkpoint(
                        self.report, self.next_cp, self.roots[frontier.size], self.verifiers
                    )
                self.next_cp = next(self.pending, None)

    def finish(self, head: tuple[Any, ...] | None, last_link: bytes) -> None:
        size = self.frontier.size
        for rest in [self.next_cp, *self.pending]:
            if rest is not None:
                self.report.checkpoints += rest.source == "database"
                self.report.add(
                    Problem(
                        f"{rest.label}covers {rest.tree_size} entries but the ledger holds {size}",
                        checkpoint=rest.tree_size,
                    )
                )
        for level, index in sorted(self.nodes):
            self.report.add(Problem(f"stored Merkle node {level}/{index} lies beyond the ledger"))
        if head is None or (head[0], bytes(head[1])) != (size, last_link):
            self.report.add(Problem(f"chain head does not match the ledger's end ({size} entries)"))


def _check_checkpoint(
    report: Report, row: CheckpointRow, root: bytes, verifiers: list[signing.Verifier]
) -> None:
    tree_size, label = row.tree_size, row.label
    report.checkpoints += row.source == "database"
    if row.root != root:
        report.add(Problem(f"{label}root does not match the ledger", checkpoint=tree_size))
    try:
        text = signing.open_note(row.note, verifiers)
        origin, size, note_root = cp.parse_checkpoint_body(text)
    except (signing.NoteError, ValueError) as exc:
        report.add(Problem(f"{label}note does not verify: {exc}", checkpoint=tree_size))
        return
    if (origin, size, note_root) != (cp.key_name(), tree_size, root):
        report.add(Problem(f"{label}signed note names another log or tree", checkpoint=tree_size))
    if row.created_at is not None and f"\ntime {rfc3339(row.created_at)}\n" not in text:
        report.add(Problem("created_at differs from the note's time", checkpoint=tree_size))


def saved_checkpoints(
    notes: list[str], report: Report, *, source: str = "saved"
) -> list[CheckpointRow]:
    """Checkpoint rows from notes kept outside the database (an auditor's copies, or the
    published ones).

    Each is checked like a stored checkpoint, so a database that lost entries and the
    checkpoints covering them still fails against a copy taken before.
    """
    rows = []
    for note in notes:
        try:
            _origin, size, root = cp.parse_checkpoint_body(signing.open_note(note, cp.verifiers()))
        except (signing.NoteError, ValueError) as exc:
            report.add(Problem(f"a {source} checkpoint does not verify: {exc}"))
            continue
        rows.append(CheckpointRow(size, root, note, source=source))
    return rows


def auto_workers(size: int) -> int:
    """One worker per CPU (at most 8) for large ledgers, one process otherwise.

    A daemonic process (a django-q2 worker) may not start children: it verifies alone.
    """
    if size < PARALLEL_MIN_ENTRIES or multiprocessing.current_process().daemon:
        return 1
    return min(os.cpu_count() or 1, 8)


def _conninfo(settings_dict: dict[str, Any]) -> dict[str, Any]:
    """libpq parameters for worker processes (the same role and database as `using`)."""
    info = {
        "dbname": settings_dict["NAME"],
        "user": settings_dict["USER"] or None,
        "password": settings_dict["PASSWORD"] or None,
        "host": settings_dict["HOST"] or None,
        "port": settings_dict["PORT"] or None,
    }
    options = settings_dict.get("OPTIONS", {})
    info.update({k: v for k, v in options.items() if isinstance(v, str | int)})
    return {k: v for k, v in info.items() if v is not None}


def _chunks(size: int, workers: int) -> list[tuple[int, int]]:
    count = max(workers, math.ceil(size / CHUNK_MAX_ENTRIES))
    step = math.ceil(size / count) if size else 1
    return [(start, min(start + step, size)) for start in range(0, size, step)]


def _parallel(
    connection: Any, cursor: Any, size: int, workers: int, contents: bool
) -> Iterator[ChunkResult]:
    cursor.execute("SELECT pg_export_snapshot()")
    (snapshot,) = cursor.fetchone()
    info = _conninfo(connection.settings_dict)
    ranges = _chunks(size, workers)
    # spawn, not fork: a forked child would share (and could close) this process's connections.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(
            check_range,
            [info] * len(ranges),
            [snapshot] * len(ranges),
            [start for start, _ in ranges],
            [end for _, end in ranges],
            [contents] * len(ranges),
        )


def verify_ledger(
    *,
    using: str = DEFAULT_DB_ALIAS,
    contents: bool = True,
    saved_notes: list[str] | None = None,
    against_published: bool = False,
    workers: int | None = None,
) -> Report:
    """Verify the whole archive; the report lists problems (empty when intact).

    `saved_notes` are checkpoint notes kept outside the database, checked like stored ones.
    `against_published`: the checkpoints published outside the database too, each checked like
    a stored one, and compared with the database's (archive/publication.py).
    `workers` processes share the entry checks (default: the CPUs, for large ledgers).
    Every checkpoint's timestamp tokens and cosignatures are checked as well, and the report
    says per checkpoint what anchors it outside the database (`Report.anchors`).
    """
    from archive import publication, timestamps, witness

    started = time.perf_counter()
    report = Report()
    connection = connections[using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if outermost:  # inside a caller's transaction, its snapshot is the one we verify
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT tree_size, root, note, created_at FROM archive_checkpoint")
        stored = [CheckpointRow(n, bytes(root), note, at) for n, root, note, at in cursor]
        published = publication.read_published(report) if against_published else None
        checkpoints = [
            *stored,
            *saved_checkpoints(saved_notes or [], report),
            *saved_checkpoints(published.notes if published else [], report, source="published"),
        ]
        checkpoints.sort(key=lambda row: row.tree_size)
        cursor.execute("SELECT level, index, hash FROM archive_merklenode")
        nodes = {(level, index): bytes(h) for level, index, h in cursor.fetchall()}
        report.nodes = len(nodes)
        cursor.execute("SELECT size, link FROM archive_chainhead WHERE id = 1")
        head = cursor.fetchone()
        cursor.execute("SELECT coalesce(max(seq), -1) + 1 FROM archive_ledgerentry")
        (size,) = cursor.fetchone()
        if workers is None:
            workers = auto_workers(size)
        report.workers = workers if outermost else 1  # workers cannot see uncommitted rows
        results: Iterable[ChunkResult]
        if report.workers > 1:
            results = _parallel(connection, cursor, size, report.workers, contents)
        else:
            results = [check_range_on(connection.connection, 0, size, contents)]
        tree = _TreeWalk(report, checkpoints, nodes)
        _merge(report, results, tree, head)
        if tree.frontier.size:  # the ledger now: published trees must be consistent with it
            tree.roots[tree.frontier.size] = tree.frontier.root()
        for row in stored:
            report.anchors[row.tree_size] = {}
        timestamps.verify_tokens(report, stored, using=using)
        witness.verify_cosignatures(report, stored, using=using)
        if published is not None:
            publication.compare(report, stored, published, tree.roots, using=using)
    report.sort_problems()
    report.seconds = time.perf_counter() - started
    return report


def _merge(
    report: Report, results: Iterable[ChunkResult], tree: _TreeWalk, head: tuple[Any, ...] | None
) -> None:
    last_link = bytes(32)
    for result in results:
        report.entries += result.entries
        report.contents += result.contents
        for problem in result.problems:
            report.add(problem)
        tree.leaves(bytes(result.leaves))
        if result.entries:
            last_link = bytes(result.last_link)
    tree.finish(head, last_link)


def record_run(report: Report, *, trigger: str) -> VerificationRun:
    """Keep the outcome (append-only) so the home page can show the last verification."""
    first = report.first_problem
    finished = timezone.now()
    return VerificationRun.objects.create(
        started_at=finished - timedelta(seconds=report.seconds),
        finished_at=finished,
        intact=report.intact,
        entries=report.entries,
        checkpoints=report.checkpoints,
        contents=report.contents,
        first_bad_seq=report.first_bad_seq,
        problem=str(first) if first else "",
        trigger=trigger,
    )
