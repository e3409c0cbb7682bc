"""The per-entry checks of verify_archive, over one range of `seq`: no Django, so that worker
processes can run them in parallel, each on its own connection to the same database snapshot.

For each entry: seq is the next one expected; the envelope is RFC 8785 canonical JSON holding only
the allowed keys and values and naming its own seq, kind and time; leaf_hash and link recompute;
each content row matches its commitment. The leaf hashes go back to the caller, which alone
rebuilds the Merkle tree and checks checkpoints (archive/verify.py).
"""

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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

FETCH = 10_000
MAX_PROBLEMS = 100
HEX_COMMITMENT = re.compile(r"[0-9a-f]{64}")
_decode = json.JSONDecoder().decode


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


@dataclass
class ChunkResult:
    """What one range's check found; `leaves` are the recomputed leaf hashes, concatenated."""

    problems: list[Problem] = field(default_factory=list)
    leaves: bytearray = field(default_factory=bytearray)
    entries: int = 0
    contents: int = 0
    last_link: bytes = ZERO_LINK

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
    # Within the domain just checked canonical_json is RFC 8785 (archive/envelope.py).
    if canonical_json(body) != envelope:
        return "envelope is not RFC 8785 canonical JSON"
    return None


def check_rows(
    entries: Iterator[tuple[Any, ...]],
    contents: Iterator[tuple[Any, ...]],
    start: int,
    end: int,
    previous_link: bytes,
) -> ChunkResult:
    """Check entries with start <= seq < end (in seq order) and their content rows."""
    result, sha256, known_keys = ChunkResult(), hashlib.sha256, set[str]()
    expected, link = start, previous_link
    last_time: datetime | None = None
    time_text = ""
    content = next(contents, None)
    for seq, kind, envelope, stored_leaf, stored_link, sealed_at in entries:
        result.entries += 1
        if seq != expected:
            result.add(Problem(f"entry missing (the next one present is seq {seq})", expected))
        leaf = sha256(b"\x00" + envelope).digest()
        if leaf != stored_leaf:
            result.add(Problem("leaf_hash does not match the envelope", seq))
        if sha256(b"\x02" + link + leaf).digest() != stored_link:
            result.add(Problem("link does not match the chain", seq))
        link, expected = stored_link, seq + 1
        result.leaves += leaf
        if sealed_at != last_time:
            last_time, time_text = sealed_at, rfc3339(sealed_at)
        body = _check_envelope(result, seq, kind, envelope, time_text, known_keys)
        if content is not None and content[0] <= seq:
            content = _check_contents(result, seq, body, content, contents)
    if expected < end:
        result.add(Problem(f"entries missing from seq {expected} to {end - 1}", expected))
    while content is not None:
        result.add(Problem("content row belongs to no entry", content[0]))
        content = next(contents, None)
    result.last_link = link
    return result


def _check_envelope(
    result: ChunkResult, seq: int, kind: str, envelope: bytes, time_text: str, known: set[str]
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
    return dict(body)


def _check_contents(
    result: ChunkResult,
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
            expected = (body or {}).get(COMMIT_PREFIX + name)
            if expected != commitment(name, bytes(salt), bytes(data)).hex():
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


def check_range_on(
    conn: psycopg.Connection, start: int, end: int, with_contents: bool
) -> ChunkResult:
    """Check [start, end) through `conn`, inside the caller's snapshot."""
    previous = ZERO_LINK
    if start > 0:
        row = conn.execute(
            "SELECT link FROM archive_ledgerentry WHERE seq = %s", [start - 1], binary=True
        ).fetchone()
        previous = bytes(row[0]) if row else ZERO_LINK
    entries = stream(
        conn,
        f"verify_entries_{start}",
        "SELECT seq, kind, envelope, leaf_hash, link, sealed_at FROM archive_ledgerentry"
        " WHERE seq >= %s AND seq < %s ORDER BY seq",
        (start, end),
    )
    contents = (
        stream(
            conn,
            f"verify_contents_{start}",
            "SELECT seq, name, salt, content FROM archive_content"
            " WHERE seq >= %s AND seq < %s ORDER BY seq, name",
            (start, end),
        )
        if with_contents
        else iter(())
    )
    return check_rows(entries, contents, start, end, previous)


def check_range(
    conninfo: dict[str, Any], snapshot: str, start: int, end: int, with_contents: bool
) -> ChunkResult:
    """A worker process's job: its own connection, the caller's exported snapshot."""
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        return check_range_on(conn, start, end, with_contents)
