"""verify_archive: re-check everything the ledger promises, streaming, without trusting caches.

In one REPEATABLE READ snapshot: the per-entry checks of archive/chain_check.py (contiguous seq,
canonical envelopes, leaf hashes, links, content commitments), run in parallel worker processes
on large ledgers; then, over the recomputed leaf hashes, every checkpoint's RFC 6962 root and
signature (and those of checkpoints saved outside the database), the stored Merkle nodes, and the
chain head.
"""

import bisect
import getpass
import math
import multiprocessing
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from archive import checkpoints as cp
from archive import signing
from archive.chain_check import (
    MAX_PROBLEMS,
    Problem,
    Slice,
    SliceResult,
    check_slice,
    check_slice_on,
    join_snapshot,
)
from archive.envelope import ZERO_LINK, rfc3339
from archive.ledger import NODE_MIN_LEVEL
from archive.merkle import CompactRange
from archive.models import VerificationRun, VerifiedCheckpoint

__all__ = ["NotVerified", "Problem", "Report", "record_run", "verify_ledger"]

# Below this many entries one process is quicker than starting workers.
PARALLEL_MIN_ENTRIES = 100_000
# Slices of 2**16 entries: a few MB of leaf hashes each, enough of them to keep every worker busy.
SLICE_LEVEL = 16


@dataclass(frozen=True)
class VerifiedPoint:
    """The newest database checkpoint a run verified, as VerifiedCheckpoint records it."""

    tree_size: int
    root: bytes
    link: bytes
    frontier: bytes


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    contents: int = 0
    nodes: int = 0
    workers: int = 1
    seconds: float = 0.0
    mode: str = "full"
    from_seq: int = 0  # the first entry this run checked
    verified: VerifiedPoint | None = None
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
            "mode": self.mode,
            "from_seq": self.from_seq,
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


class _Tree:
    """Joins the slices' results into the Merkle tree, checking stored nodes and checkpoints.

    An aligned, complete slice arrives as a few perfect subtrees (and its nodes from
    NODE_MIN_LEVEL up, which are checked against the stored ones); any other slice (the first
    of an incremental run, or any after entries went missing) is appended leaf by leaf.
    """

    def __init__(
        self,
        report: Report,
        checkpoints: list[CheckpointRow],
        nodes: dict[tuple[int, int], bytes],
        frontier: CompactRange,
    ) -> None:
        self.report, self.nodes, self.frontier = report, nodes, frontier
        self.roots: dict[int, bytes] = {}  # the recomputed root at each checkpoint's size
        self.pending = sorted(checkpoints, key=lambda row: row.tree_size)
        self.sizes = [row.tree_size for row in self.pending]
        self.next = 0  # index into pending
        self.verifiers = cp.verifiers() if checkpoints else []
        # The newest database checkpoint reached: (size, root, frontier) for the record.
        self.verified: tuple[int, bytes, bytes] | None = None
        self._reach(frontier)

    def sizes_within(self, start: int, end: int) -> tuple[int, ...]:
        """The checkpoint sizes in (start, end]: the slice's cuts the parent will ask for."""
        within = self.sizes[
            bisect.bisect_right(self.sizes, start) : bisect.bisect_right(self.sizes, end)
        ]
        return tuple(sorted(set(within)))

    def add(self, result: SliceResult, aligned: bool) -> None:
        for problem in result.problems:
            self.report.add(problem)
        self.report.entries += result.entries
        self.report.contents += result.contents
        if aligned and result.cuts and self.frontier.size == result.start:
            self._add_subtrees(result)
        else:
            self._add_leaves(result.leaves)

    def _add_subtrees(self, result: SliceResult) -> None:
        nodes, add = self.nodes, self.report.add
        for level, blob in result.nodes.items():
            base = result.start >> level
            for offset in range(0, len(blob), 32):
                index = base + offset // 32
                if nodes.pop((level, index), None) != blob[offset : offset + 32]:
                    add(self._node_problem(level, index))
        for size in sorted(result.cuts):
            if size == result.end:
                continue
            partial = self.frontier.copy()
            for level, node in result.cuts[size]:
                partial.append_node(level, node)
            self._reach(partial)
        for level, node in result.cuts[result.end]:
            self._check_nodes(self.frontier.append_node(level, node))
        self._reach(self.frontier)

    def _add_leaves(self, blob: bytes) -> None:
        frontier = self.frontier
        for offset in range(0, len(blob), 32):
            self._check_nodes(frontier.append(blob[offset : offset + 32]))
            self._reach(frontier)

    def _check_nodes(self, completed: list[tuple[int, int, bytes]]) -> None:
        for level, index, node in completed:
            if level >= NODE_MIN_LEVEL and self.nodes.pop((level, index), None) != node:
                self.report.add(self._node_problem(level, index))

    @staticmethod
    def _node_problem(level: int, index: int) -> Problem:
        return Problem(
            f"stored Merkle node {level}/{index} is wrong or missing", ((index + 1) << level) - 1
        )

    def _reach(self, frontier: CompactRange) -> None:
        """Check the checkpoints of exactly `frontier.size` entries against its root."""
        size = frontier.size
        while self.next < len(self.pending) and self.pending[self.next].tree_size <= size:
            row = self.pending[self.next]
            if row.tree_size == size:
                root = self.roots[size] = self.roots.get(size) or frontier.root()
                _check_checkpoint(self.report, row, root, self.verifiers)
                if row.source == "database":
                    self.verified = (size, root, frontier.to_bytes())
            self.next += 1

    def finish(self, head: tuple[Any, ...] | None, last_link: bytes) -> None:
        size = self.frontier.size
        for rest in self.pending[self.next :]:
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


def _slices(start: int, end: int, tree: _Tree, contents: bool) -> list[Slice]:
    """[start, end) cut at the multiples of 2**SLICE_LEVEL; only a first slice that starts
    between two (an incremental run's) is unaligned."""
    step, jobs = 1 << SLICE_LEVEL, []
    while start < end:
        stop = min(end, (start // step + 1) * step)
        aligned = start % step == 0
        cuts = tree.sizes_within(start, stop) if aligned else ()
        jobs.append(Slice(start, stop, SLICE_LEVEL, aligned, contents, cuts, NODE_MIN_LEVEL))
        start = stop
    return jobs


def _results(connection: Any, jobs: list[Slice], workers: int) -> Iterator[SliceResult]:
    """The slices' results in order: from `workers` processes sharing this transaction's
    snapshot, or from this connection."""
    if workers <= 1:
        for job in jobs:
            yield check_slice_on(connection.connection, job)
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_export_snapshot()")
        (snapshot,) = cursor.fetchone()
    # spawn, not fork: a forked child would share (and could close) this process's connections.
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=join_snapshot,
        initargs=(_conninfo(connection.settings_dict), snapshot),
    ) as pool:
        yield from pool.map(check_slice, jobs)


class NotVerified(Exception):
    """An incremental run has no intact verification to start from."""


def verify_ledger(
    *,
    using: str = DEFAULT_DB_ALIAS,
    contents: bool = True,
    saved_notes: list[str] | None = None,
    against_published: bool = False,
    workers: int | None = None,
    incremental: bool = False,
) -> Report:
    """Verify the archive; the report lists problems (empty when intact).

    `saved_notes` are checkpoint notes kept outside the database, checked like stored ones.
    `against_published`: the checkpoints published outside the database too, each checked like
    a stored one, and compared with the database's (archive/publication.py).
    `workers` processes share the entry checks (default: the CPUs, for large ledgers).
    Every checkpoint's timestamp tokens and cosignatures are checked as well, and the report
    says per checkpoint what anchors it outside the database (`Report.anchors`).

    `incremental`: only the entries after the newest checkpoint an intact run recorded
    (VerifiedCheckpoint), the checkpoints from it on, and that they join it; raises NotVerified
    when there is none. The full run stays the audit: only it re-reads every entry.
    """
    from archive import publication, timestamps, witness

    if incremental and (saved_notes or against_published or not contents):
        raise ValueError("saved or published checkpoints and --skip-contents need a full run")
    started = time.perf_counter()
    report = Report(mode="incremental" if incremental else "full")
    connection = connections[using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if outermost:  # inside a caller's transaction, its snapshot is the one we verify
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        frontier = CompactRange()
        if incremental:
            frontier = _start_from_verified(report, cursor)
            if not report.intact:
                report.seconds = time.perf_counter() - started
                return report
        start = report.from_seq = frontier.size
        cursor.execute(
            "SELECT tree_size, root, note, created_at FROM archive_checkpoint"
            " WHERE tree_size > %s OR %s = 0",
            [start, start],
        )
        stored = [CheckpointRow(n, bytes(root), note, at) for n, root, note, at in cursor]
        published = publication.read_published(report) if against_published else None
        checkpoints = [
            *stored,
            *saved_checkpoints(saved_notes or [], report),
            *saved_checkpoints(published.notes if published else [], report, source="published"),
        ]
        nodes = _stored_nodes(cursor, start)
        report.nodes = len(nodes)
        cursor.execute("SELECT size, link FROM archive_chainhead WHERE id = 1")
        head = cursor.fetchone()
        cursor.execute("SELECT coalesce(max(seq), -1) + 1 FROM archive_ledgerentry")
        (size,) = cursor.fetchone()
        if workers is None:
            workers = auto_workers(size - start)
        report.workers = workers if outermost else 1  # workers cannot see uncommitted rows
        tree = _Tree(report, checkpoints, nodes, frontier)
        jobs = _slices(start, size, tree, contents)
        last_link = _previous_link(cursor, start)
        for job, result in zip(jobs, _results(connection, jobs, report.workers), strict=True):
            tree.add(result, job.aligned)
            if result.entries:
                last_link = result.last_link
        tree.finish(head, last_link)
        if tree.frontier.size:  # the ledger now: published trees must be consistent with it
            tree.roots[tree.frontier.size] = tree.frontier.root()
        if incremental:  # the start checkpoint's anchors too: timestamps must not go back
            cursor.execute(
                "SELECT tree_size, root, note, created_at FROM archive_checkpoint"
                " WHERE tree_size = %s",
                [start],
            )
            stored = [CheckpointRow(n, bytes(r), note, at) for n, r, note, at in cursor] + stored
        for row in stored:
            report.anchors[row.tree_size] = {}
        timestamps.verify_tokens(report, stored, using=using)
        witness.verify_cosignatures(report, stored, using=using)
        if published is not None:
            publication.compare(report, stored, published, tree.roots, using=using)
        if tree.verified is not None and contents:
            at, root, compact = tree.verified
            report.verified = VerifiedPoint(at, root, _previous_link(cursor, at), compact)
    report.sort_problems()
    report.seconds = time.perf_counter() - started
    return report


def _previous_link(cursor: Any, size: int) -> bytes:
    """The stored link of entry size - 1 (the zero link before the first entry)."""
    if size == 0:
        return ZERO_LINK
    cursor.execute("SELECT link FROM archive_ledgerentry WHERE seq = %s", [size - 1])
    row = cursor.fetchone()
    return bytes(row[0]) if row else ZERO_LINK


def _stored_nodes(cursor: Any, start: int) -> dict[tuple[int, int], bytes]:
    """The stored Merkle nodes that leaves from `start` on complete (all of them from 0)."""
    if start == 0:
        cursor.execute("SELECT level, index, hash FROM archive_merklenode")
    else:
        levels = list(range(NODE_MIN_LEVEL, 64))
        cursor.execute(
            "SELECT m.level, m.index, m.hash FROM archive_merklenode m"
            " JOIN unnest(%s::smallint[], %s::bigint[]) AS f(level, first)"
            " ON m.level = f.level AND m.index >= f.first",
            [levels, [start >> level for level in levels]],
        )
    return {(level, index): bytes(h) for level, index, h in cursor.fetchall()}


def _start_from_verified(report: Report, cursor: Any) -> CompactRange:
    """The frontier of the newest verified checkpoint, once it is shown to still hold: its
    signed checkpoint is there with the same root, the recorded frontier gives that root, the
    ledger's link there is the recorded one, and no run since found the archive broken."""
    cursor.execute(
        "SELECT v.run_id, v.tree_size, v.root, v.link, v.frontier, c.root, c.note, c.created_at"
        " FROM archive_verifiedcheckpoint v"
        " LEFT JOIN archive_checkpoint c ON c.tree_size = v.tree_size"
        " ORDER BY v.tree_size DESC, v.id DESC LIMIT 1"
    )
    row = cursor.fetchone()
    if row is None:
        raise NotVerified("no checkpoint was verified yet: run a full verify_archive first")
    run_id, size, root, link, blob, signed_root, note, created_at = row
    root, link = bytes(root), bytes(link)
    cursor.execute(
        "SELECT id FROM archive_verificationrun WHERE id > %s AND NOT intact LIMIT 1", [run_id]
    )
    if cursor.fetchone() is not None:
        report.add(Problem("a verification since the last verified checkpoint found problems"))
    if note is None:
        report.add(Problem("the verified checkpoint is missing", checkpoint=size))
        return CompactRange()
    try:
        frontier = CompactRange.from_bytes(size, bytes(blob))
    except ValueError as exc:
        frontier = CompactRange()
        report.add(Problem(f"the recorded frontier is malformed: {exc}", checkpoint=size))
    if frontier.root() != root or bytes(signed_root) != root:
        report.add(Problem("root differs from the one verified", checkpoint=size))
    _check_checkpoint(report, CheckpointRow(size, root, note, created_at), root, cp.verifiers())
    if _previous_link(cursor, size) != link:
        report.add(Problem("link differs from the one verified", size - 1))
    return frontier


def record_run(report: Report, *, trigger: str) -> VerificationRun:
    """Keep the outcome (append-only) so the home page can show the last verification; an
    intact run also records the newest checkpoint it verified, for incremental runs."""
    first = report.first_problem
    finished = timezone.now()
    with transaction.atomic():
        run = VerificationRun.objects.create(
            started_at=finished - timedelta(seconds=report.seconds),
            finished_at=finished,
            intact=report.intact,
            entries=report.entries,
            checkpoints=report.checkpoints,
            contents=report.contents,
            first_bad_seq=report.first_bad_seq,
            problem=str(first) if first else "",
            trigger=trigger,
            mode=report.mode,
            from_seq=report.from_seq,
        )
        point = report.verified
        if report.intact and point is not None:
            VerifiedCheckpoint.objects.create(
                run=run,
                checkpoint_id=point.tree_size,
                root=point.root,
                link=point.link,
                frontier=point.frontier,
                verified_by=f"{getpass.getuser()}@{socket.gethostname()}",
            )
    return run
