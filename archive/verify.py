"""verify_archive: re-check everything the ledger promises, streaming, without trusting caches.

Checks, in one REPEATABLE READ snapshot: contiguous `seq` from 0; each envelope is RFC 8785
canonical and names its own seq, kind and sealed_at; `leaf_hash` and `link` recompute; every
checkpoint's root equals the RFC 6962 root recomputed from the leaves and its note's signature
verifies; stored Merkle nodes equal the recomputed ones; every content row present still matches
its salted commitment; the chain head agrees with the ledger's end.
"""

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import rfc8785
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from archive import checkpoints as cp
from archive import signing
from archive.ledger import COMMIT_PREFIX, ZERO_LINK, commitment, rfc3339
from archive.merkle import CompactRange
from archive.models import VerificationRun

FETCH = 10_000
MAX_PROBLEMS = 100


@dataclass(frozen=True)
class Problem:
    what: str
    seq: int | None = None
    checkpoint: int | None = None

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else f"checkpoint {self.checkpoint}"
        if self.seq is None and self.checkpoint is None:
            where = "ledger"
        return f"{where}: {self.what}"


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    contents: int = 0
    nodes: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        """The first problem met walking the ledger in seq order."""
        return self.problems[0] if self.problems else None

    @property
    def first_bad_seq(self) -> int | None:
        return min((p.seq for p in self.problems if p.seq is not None), default=None)

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "contents_checked": self.contents,
            "merkle_nodes_checked": self.nodes,
            "seconds": round(self.seconds, 3),
            "first_bad_seq": self.first_bad_seq,
            "problems": [
                {"seq": p.seq, "checkpoint": p.checkpoint, "what": p.what} for p in self.problems
            ],
        }


def _stream(raw: Any, name: str, query: str) -> Iterator[tuple[Any, ...]]:
    """Rows of `query` through a server-side cursor with binary transfer (no hex decoding)."""
    with raw.cursor(name=name, binary=True) as cursor:
        cursor.itersize = FETCH
        cursor.execute(query)
        while rows := cursor.fetchmany(FETCH):
            yield from rows


def _is_canonical(envelope: bytes, body: dict[str, Any]) -> bool:
    # For our value domain (ASCII keys, strings, safe integers, booleans, null) sorted compact
    # json.dumps equals RFC 8785; anything that differs is settled by rfc8785 itself.
    fast = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if fast.encode() == envelope:
        return True
    try:
        return bool(rfc8785.dumps(body) == envelope)
    except rfc8785.CanonicalizationError:
        return False


class _Walker:
    """Walks the ledger in seq order, keeping the expected link and the Merkle frontier."""

    def __init__(self, report: Report, nodes: dict[tuple[int, int], bytes]) -> None:
        self.report, self.nodes = report, nodes
        self.link, self.seq, self.frontier = ZERO_LINK, 0, CompactRange()
        self.last_time: datetime | None = None
        self.last_time_text = ""

    def entry(self, row: tuple[Any, ...]) -> Any:
        seq, kind, envelope, stored_leaf, stored_link, sealed_at = row
        report, sha256 = self.report, hashlib.sha256
        if seq != self.seq:
            report.add(Problem(f"entry missing (the next one present is seq {seq})", self.seq))
            self.seq = seq
        leaf = sha256(b"\x00" + envelope).digest()
        if leaf != stored_leaf:
            report.add(Problem("leaf_hash does not match the envelope", seq))
        link = sha256(b"\x02" + self.link + leaf).digest()
        if link != stored_link:
            report.add(Problem("link does not match the chain", seq))
        self.link, self.seq = bytes(stored_link), seq + 1
        for level, index, node in self.frontier.append(leaf):
            stored = self.nodes.pop((level, index), None) if level >= 8 else node
            if stored != node:
                report.add(Problem(f"stored Merkle node {level}/{index} is wrong or missing", seq))
        return self._envelope(seq, kind, bytes(envelope), sealed_at)

    def _envelope(self, seq: int, kind: str, envelope: bytes, sealed_at: datetime) -> Any:
        try:
            body = json.loads(envelope)
        except ValueError:
            self.report.add(Problem("envelope is not JSON", seq))
            return None
        if sealed_at != self.last_time:
            self.last_time, self.last_time_text = sealed_at, rfc3339(sealed_at)
        if not isinstance(body, dict) or not _is_canonical(envelope, body):
            self.report.add(Problem("envelope is not RFC 8785 canonical JSON", seq))
        elif (body.get("seq"), body.get("kind"), body.get("sealed_at")) != (
            seq,
            kind,
            self.last_time_text,
        ):
            self.report.add(Problem("envelope does not name this entry's seq, kind and time", seq))
        return body


def _check_checkpoint(
    report: Report, row: tuple[Any, ...], root: bytes, verifiers: list[signing.Verifier]
) -> None:
    tree_size, stored_root, note = row[0], bytes(row[1]), row[2]
    report.checkpoints += 1
    if stored_root != root:
        report.add(Problem("root does not match the ledger", checkpoint=tree_size))
    try:
        text = signing.open_note(note, verifiers)
        origin, size, note_root = cp.parse_checkpoint_body(text)
    except (signing.NoteError, ValueError) as exc:
        report.add(Problem(f"note does not verify: {exc}", checkpoint=tree_size))
        return
    if (origin, size, note_root) != (cp.key_name(), tree_size, root):
        report.add(Problem("signed note names another log or tree", checkpoint=tree_size))
    created_at = row[3] if len(row) > 3 else None  # saved copies have no row of their own
    if created_at is not None and f"\ntime {rfc3339(created_at)}\n" not in text:
        report.add(Problem("created_at differs from the note's time", checkpoint=tree_size))


def saved_checkpoints(notes: list[str], report: Report) -> list[tuple[int, bytes, str]]:
    """Checkpoint rows from notes kept outside the database (an auditor's copies).

    Each is checked like a stored checkpoint, so a database that lost entries and the
    checkpoints covering them still fails against a copy taken before.
    """
    rows = []
    for note in notes:
        try:
            _origin, size, root = cp.parse_checkpoint_body(signing.open_note(note, cp.verifiers()))
        except (signing.NoteError, ValueError) as exc:
            report.add(Problem(f"a saved checkpoint does not verify: {exc}"))
            continue
        rows.append((size, root, note))
    return rows


def _check_contents(
    report: Report, seq: int, body: dict[str, Any] | None, rows: list[tuple[Any, ...]]
) -> None:
    for _seq, name, salt, content in rows:
        report.contents += 1
        expected = (body or {}).get(COMMIT_PREFIX + name)
        if expected != commitment(name, bytes(salt), bytes(content)).hex():
            report.add(Problem(f"content {name!r} does not match its commitment", seq))


LEDGER_QUERY = (
    "SELECT seq, kind, envelope, leaf_hash, link, sealed_at FROM archive_ledgerentry ORDER BY seq"
)
CONTENT_QUERY = "SELECT seq, name, salt, content FROM archive_content ORDER BY seq, name"


def verify_ledger(
    *, using: str = DEFAULT_DB_ALIAS, contents: bool = True, saved_notes: list[str] | None = None
) -> Report:
    """Verify the whole archive; the report lists problems (empty when intact).

    `saved_notes` are checkpoint notes kept outside the database, checked like stored ones.
    """
    started = time.perf_counter()
    report = Report()
    connection = connections[using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if outermost:  # inside a caller's transaction, its snapshot is the one we verify
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT tree_size, root, note, created_at FROM archive_checkpoint")
        checkpoints = cursor.fetchall() + saved_checkpoints(saved_notes or [], report)
        checkpoints.sort(key=lambda row: row[0])
        cursor.execute("SELECT level, index, hash FROM archive_merklenode")
        nodes = {(level, index): bytes(h) for level, index, h in cursor.fetchall()}
        report.nodes = len(nodes)
        cursor.execute("SELECT size, link FROM archive_chainhead WHERE id = 1")
        head = cursor.fetchone()
        walker = _Walker(report, nodes)
        raw = connection.connection
        _walk(
            walker,
            _stream(raw, "verify_ledger", LEDGER_QUERY),
            checkpoints,
            _stream(raw, "verify_contents", CONTENT_QUERY) if contents else iter(()),
        )
        _check_end(walker, head)
    report.seconds = time.perf_counter() - started
    return report


def _walk(
    walker: _Walker,
    entries: Iterator[tuple[Any, ...]],
    checkpoints: list[tuple[Any, ...]],
    content_rows: Iterator[tuple[Any, ...]],
) -> None:
    """Merge the three seq-ordered streams: entries, their contents, and the checkpoints."""
    report = walker.report
    verifiers = cp.verifiers() if checkpoints else []
    pending = iter(checkpoints)
    next_cp = next(pending, None)
    content = next(content_rows, None)
    for row in entries:
        report.entries += 1
        seq, body = row[0], walker.entry(row)
        mine = []
        while content is not None and content[0] <= seq:
            if content[0] < seq:
                report.add(Problem("content row belongs to no entry", content[0]))
            else:
                mine.append(content)
            content = next(content_rows, None)
        _check_contents(report, seq, body, mine)
        while next_cp is not None and next_cp[0] <= walker.frontier.size:
            if next_cp[0] == walker.frontier.size:
                _check_checkpoint(report, next_cp, walker.frontier.root(), verifiers)
            next_cp = next(pending, None)
    for rest in [next_cp, *pending]:
        if rest is not None:
            report.checkpoints += 1
            report.add(
                Problem(
                    f"covers {rest[0]} entries but the ledger holds {walker.frontier.size}",
                    checkpoint=rest[0],
                )
            )
    if content is not None:
        report.add(Problem("content rows after the last entry", content[0]))


def _check_end(walker: _Walker, head: tuple[Any, ...] | None) -> None:
    """Nodes nobody matched, and a chain head that disagrees with the ledger's end."""
    for level, index in sorted(walker.nodes):
        walker.report.add(Problem(f"stored Merkle node {level}/{index} lies beyond the ledger"))
    if head is None or (head[0], bytes(head[1])) != (walker.frontier.size, walker.link):
        walker.report.add(
            Problem(f"chain head does not match the ledger's end (seq {walker.frontier.size - 1})")
        )


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
