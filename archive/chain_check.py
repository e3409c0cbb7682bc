"""The per-entry checks of verify_archive, over one slice of `seq`: no Django, so that worker
processes can run them in parallel, each on its own connection to the same database snapshot.

For each entry: seq is the next one expected; the envelope is RFC 8785 canonical JSON holding only
the allowed keys and values and naming its own seq, kind and time; leaf_hash and link recompute;
each content row matches its commitment. A slice aligned on its size also hashes its part of the
Merkle tree (archive/merkle.py subtree_levels), so the parent only joins slices: it adds each as a
few perfect subtrees, checks the stored nodes and checkpoints (archive/verify.py).

Where the time goes (1M entries, one process): the envelope's canonical check is most of it, so
an envelope whose shape was already seen takes a fast path (`_fast_body`, parsed and re-encoded
with orjson) that accepts only what `envelope_problem` accepts; anything it does not accept at
once gets the full check (the json module and canonical_json, the definition), which names the
problem. Measured on the 10M archive's first 65,536 entries (2.83 contents each): 11.8 us of CPU
an entry to check them with the json module, 7.6 us with orjson and each content name's tag
hashed once (archive.envelope.commitment); reading the rows is another 3-8 us.
"""

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg import sql

from archive.envelope import (
    COMMIT_PREFIX,
    ENVELOPE_VERSION,
    NAME_RE,
    SAFE_INTEGER,
    SCALAR_TYPES,
    ZERO_LINK,
    canonical_json,
    commitment,
    rfc3339,
)
from archive.merkle import range_cut, subtree_levels

FETCH = 10_000
MAX_PROBLEMS = 100
ENTRIES_QUERY = (
    "SELECT seq, kind, envelope, leaf_hash, link, sealed_at FROM archive_ledgerentry"
    " WHERE seq >= %s AND seq < %s ORDER BY seq"
)
CONTENTS_QUERY = (
    "SELECT seq, name, salt, content FROM archive_content"
    " WHERE seq >= %s AND seq < %s ORDER BY seq, name"
)
HEX_COMMITMENT = re.compile(r"[0-9a-f]{64}")
_decode = json.JSONDecoder().decode
_SORTED = orjson.OPT_SORT_KEYS
_SCALARS = frozenset(SCALAR_TYPES)
_LONG_NUMBER = re.compile(rb":-?[0-9]{16}")  # |n| < 2**53 has at most 16 digits; 15 always fit
MAX_SHAPES = 10_000


@dataclass(frozen=True)
class Problem:
    what: str
    seq: int | None = None
    checkpoint: int | None = None

    def __str__(self) -> str:
        if self.seq is not None:
            return f"seq {self.seq}: {self.what}"
        if self.checkpoint is not None:
            return f"checkpoint {self.checkpoint}: {self.what}"
        return f"ledger: {self.what}"


@dataclass(frozen=True)
class Slice:
    """A worker's job: entries [start, end); `aligned` when start is a multiple of 2**level and
    end - start <= 2**level, so the slice hashes its own perfect subtrees."""

    start: int
    end: int
    level: int
    aligned: bool
    contents: bool = True
    cuts: tuple[int, ...] = ()  # checkpoint sizes in (start, end]: their subtrees are wanted
    node_min_level: int = 8  # stored Merkle nodes from this level up (archive.ledger)


@dataclass
class SliceResult:
    """What one slice's check found.

    `nodes[level]` are the complete nodes of that level inside the slice (node_min_level and
    up), concatenated; `cuts[size]` the perfect subtrees covering [start, size), largest first.
    An unaligned slice returns its recomputed `leaves` instead, for the parent to append.
    """

    start: int
    end: int
    problems: list[Problem] = field(default_factory=list)
    entries: int = 0
    contents: int = 0
    last_link: bytes = ZERO_LINK
    nodes: dict[int, bytes] = field(default_factory=dict)
    cuts: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    leaves: bytes = b""

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)


def envelope_problem(envelope: bytes, body: Any, known_keys: set[str]) -> str | None:
    """Why `envelope` (parsed as `body`) is not a canonical envelope of the allowed shape."""
    if type(body) is not dict:
        return "envelope is not a JSON object"
    for key, value in body.items():
        if key not in known_keys:
            if not NAME_RE.fullmatch(key):
                return f"envelope key {key!r} is not allowed"
            known_keys.add(key)
        if type(value) not in SCALAR_TYPES:
            return f"envelope value of {key!r} is not a string, integer, boolean or null"
        if type(value) is int and not -SAFE_INTEGER < value < SAFE_INTEGER:
            return f"envelope integer {key!r} is out of range"
        if key.startswith(COMMIT_PREFIX) and not HEX_COMMITMENT.fullmatch(str(value)):
            return f"commitment {key!r} is not 64 lowercase hex digits"
    # Within the domain just checked canonical_json is RFC 8785 (archive/envelope.py); a lone
    # surrogate (from a \\ud800 escape) is not Unicode, so not canonical either.
    try:
        canonical = canonical_json(body)
    except UnicodeEncodeError:
        canonical = b""
    if canonical != envelope:
        return "envelope is not RFC 8785 canonical JSON"
    return None


def check_rows(
    entries: Iterator[tuple[Any, ...]],
    contents: Iterator[tuple[Any, ...]],
    result: SliceResult,
    previous_link: bytes,
) -> bytearray:
    """Check entries with result.start <= seq < result.end (in seq order) and their content rows;
    return the recomputed leaf hashes, concatenated."""
    sha256, add, leaves = hashlib.sha256, result.add, bytearray()
    shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
    known_keys = set[str]()
    expected, link, end = result.start, previous_link, result.end
    last_time: datetime | None = None
    time_text = ""
    content = next(contents, None)
    for seq, kind, envelope, stored_leaf, stored_link, sealed_at in entries:
        if seq != expected:
            add(Problem(f"entry missing (the next one present is seq {seq})", expected))
        leaf = sha256(b"\x00" + envelope).digest()
        if leaf != stored_leaf:
            add(Problem("leaf_hash does not match the envelope", seq))
        if sha256(b"\x02" + link + leaf).digest() != stored_link:
            add(Problem("link does not match the chain", seq))
        link, expected = stored_link, seq + 1
        leaves += leaf
        if sealed_at != last_time:
            last_time, time_text = sealed_at, rfc3339(sealed_at)
        body = _fast_body(envelope, seq, kind, time_text, shapes)
        if body is None:
            body = _check_envelope(result, seq, kind, envelope, time_text, known_keys, shapes)
        if content is not None and content[0] <= seq:
            content = _check_contents(result, seq, body, content, contents)
    result.entries = len(leaves) // 32
    if expected < end:
        add(Problem(f"entries missing from seq {expected} to {end - 1}", expected))
    while content is not None:
        add(Problem("content row belongs to no entry", content[0]))
        content = next(contents, None)
    result.last_link = link
    return leaves


def _fast_body(
    envelope: bytes,
    seq: int,
    kind: str,
    time_text: str,
    shapes: dict[tuple[str, ...], tuple[str, ...]],
) -> dict[str, Any] | None:
    """The parsed envelope when it certainly passes `_check_envelope`, else None.

    Sound by construction: the keys are a shape `_check_envelope` already accepted (valid names;
    the shape lists its commitment keys), every value is a scalar, no integer has 16 digits or
    more (so all are within +-2**53), each commitment is 64 lowercase hex digits, the names match,
    and re-encoding gives back the same bytes. Everything else takes the full check.

    Parsed and re-encoded with orjson, which writes exactly what canonical_json writes for these
    values (sorted keys, no white space, the same escapes, UTF-8; tests/archive/test_verify.py
    checks it for every character): a third of the json module's time, and most of verifying an
    entry was these two steps (3.6 of 10.6 us of CPU an entry).
    """
    try:
        body = orjson.loads(envelope)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict:
        return None
    commits = shapes.get(tuple(body))
    if commits is None or not _SCALARS.issuperset(map(type, body.values())):
        return None
    if _LONG_NUMBER.search(envelope):
        return None
    for key in commits:
        value = body[key]
        if type(value) is not str or not HEX_COMMITMENT.fullmatch(value):
            return None
    names = (body.get("v"), body.get("seq"), body.get("kind"), body.get("sealed_at"))
    if names != (ENVELOPE_VERSION, seq, kind, time_text) or type(body["v"]) is not int:
        return None
    try:
        return body if orjson.dumps(body, option=_SORTED) == envelope else None
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate; the full check names it
        return None


def _check_envelope(
    result: SliceResult,
    seq: int,
    kind: str,
    envelope: bytes,
    time_text: str,
    known: set[str],
    shapes: dict[tuple[str, ...], tuple[str, ...]],
) -> dict[str, Any] | None:
    try:
        body = _decode(envelope.decode())
    except ValueError:
        result.add(Problem("envelope is not UTF-8 JSON", seq))
        return None
    problem = envelope_problem(envelope, body, known)
    if problem:
        result.add(Problem(problem, seq))
        return None
    names = (body.get("v"), body.get("seq"), body.get("kind"), body.get("sealed_at"))
    if names != (ENVELOPE_VERSION, seq, kind, time_text) or type(body["v"]) is not int:
        result.add(Problem("envelope does not name this entry's version, seq, kind and time", seq))
    elif len(shapes) < MAX_SHAPES:  # a shape seen intact: the next envelopes like it go fast
        shapes[tuple(body)] = tuple(key for key in body if key.startswith(COMMIT_PREFIX))
    return dict(body)


def _check_contents(
    result: SliceResult,
    seq: int,
    body: dict[str, Any] | None,
    content: tuple[Any, ...] | None,
    contents: Iterator[tuple[Any, ...]],
) -> tuple[Any, ...] | None:
    """Consume the content rows up to `seq`; return the first row beyond it."""
    while content is not None and content[0] <= seq:
        content_seq, name, salt, data = content
        if content_seq < seq:
            result.add(Problem("content row belongs to no entry", content_seq))
        else:
            result.contents += 1
            # a name the envelope commits nothing to (it may not even be ASCII) is not hashed
            expected = body.get(COMMIT_PREFIX + name) if body is not None else None
            if expected is None or expected != commitment(name, salt, data).hex():
                result.add(Problem(f"content {name!r} does not match its commitment", seq))
        content = next(contents, None)
    return content


def stream(conn: psycopg.Connection, name: str, query: str, params: tuple[int, int]) -> Iterator:  # type: ignore[type-arg]
    """Rows of `query` through a server-side cursor with binary transfer (bytea as bytes)."""
    with conn.cursor(name=name, binary=True) as cursor:
        cursor.itersize = FETCH
        cursor.execute(query, params)
        while rows := cursor.fetchmany(FETCH):
            yield from rows


def check_slice_on(conn: psycopg.Connection, job: Slice) -> SliceResult:
    """Check one slice through `conn`, inside the caller's snapshot."""
    start, end = job.start, job.end
    previous = ZERO_LINK
    if start > 0:
        row = conn.execute(
            "SELECT link FROM archive_ledgerentry WHERE seq = %s", [start - 1]
        ).fetchone()
        previous = bytes(row[0]) if row else ZERO_LINK
    entries = stream(
        conn,
        f"verify_entries_{start}",
        ENTRIES_QUERY,
        (start, end),
    )
    contents = (
        stream(
            conn,
            f"verify_contents_{start}",
            CONTENTS_QUERY,
            (start, end),
        )
        if job.contents
        else iter(())
    )
    result = SliceResult(start, end)
    leaves = bytes(check_rows(entries, contents, result, previous))
    # The parent appends these one by one where it cannot add the slice's subtrees: an unaligned
    # slice, or any slice after entries went missing (later roots are then reported against the
    # leaves that are there, as a verifier reading the table in order would compute them).
    result.leaves = leaves
    if job.aligned and len(leaves) == 32 * (end - start):
        levels = subtree_levels(leaves, job.level)
        result.nodes = {level: levels[level] for level in range(job.node_min_level, len(levels))}
        result.cuts = {size: range_cut(levels, size - start) for size in {*job.cuts, end}}
    return result


# A worker process's connection, in the parent's exported snapshot (set by `join_snapshot`).
_worker_conn: psycopg.Connection | None = None


def join_snapshot(conninfo: dict[str, Any], snapshot: str) -> None:
    """A worker process's initializer: its own connection, the parent's exported snapshot."""
    global _worker_conn
    conn = psycopg.connect(**conninfo, autocommit=True)
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    _worker_conn = conn


def check_slice(job: Slice) -> SliceResult:
    """A worker process's job, on the connection `join_snapshot` opened."""
    assert _worker_conn is not None, "join_snapshot() first"
    return check_slice_on(_worker_conn, job)


def stream_slice(job: Slice) -> int:
    """Read what check_slice reads and check nothing: the ceiling the benchmark measures
    check_slice against (tests/performance/test_bench_verify.py), on the same worker setup."""
    assert _worker_conn is not None, "join_snapshot() first"
    rows = 0
    for name, query in (("entries", ENTRIES_QUERY), ("contents", CONTENTS_QUERY)):
        for _row in stream(
            _worker_conn, f"ceiling_{name}_{job.start}", query, (job.start, job.end)
        ):
            rows += 1
    return rows
