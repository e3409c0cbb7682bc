"""The ledger: the archive's only write path (docs/LEDGER.md is its public specification).

`append()` seals a batch of facts: it locks the chain head, gives each fact the next `seq`,
commits its contents with fresh salts, builds its RFC 8785 envelope, and writes entries, contents
and Merkle nodes in the caller's transaction. PostgreSQL refuses every other change to these
tables for the runtime role, and its insert trigger refuses an entry whose hashes or link are
wrong, so a bug here cannot fork or break the chain either.
"""

import os
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models.base import ModelState

from archive.envelope import (
    COMMIT_PREFIX,
    ENVELOPE_VERSION,
    NAME_RE,
    RESERVED_KEYS,
    SALT_BYTES,
    ZERO_LINK,
    Fact,
    LedgerError,
    Scalar,
    build_envelope,
    chain_link,
    commitment,
    commitment_tag,
    rfc3339,
)
from archive.merkle import CompactRange, leaf_hash
from archive.models import LedgerEntry

__all__ = [
    "COMMIT_PREFIX",
    "ENVELOPE_VERSION",
    "NODE_MIN_LEVEL",
    "RESERVED_KEYS",
    "ZERO_LINK",
    "Fact",
    "LedgerError",
    "Scalar",
    "append",
    "build_envelope",
    "chain_link",
    "commitment",
    "commitment_tag",
    "rfc3339",
]

# Subtrees of 2**8 leaves and larger are stored (archive_merklenode); proofs read those rows.
NODE_MIN_LEVEL = 8


def _commit_contents(fact: Fact) -> tuple[dict[str, bytes], list[tuple[str, bytes, bytes]]]:
    commits: dict[str, bytes] = {}
    rows: list[tuple[str, bytes, bytes]] = []
    for name, content in fact.contents.items():
        if not NAME_RE.fullmatch(name) or not isinstance(content, bytes):
            raise LedgerError(f"content {name!r} needs a valid name and bytes")
        salt = os.urandom(SALT_BYTES)
        commits[name] = commitment(name, salt, content)
        rows.append((name, salt, content))
    return commits, rows


def append(facts: Sequence[Fact], *, using: str = DEFAULT_DB_ALIAS) -> list[LedgerEntry]:
    """Seal `facts` in order, in one transaction (joining the caller's, if any).

    Concurrent appenders serialise on the chain-head row; the primary key on `seq` and the
    insert trigger make a fork or a gap impossible to commit whatever the isolation level.
    """
    if not facts:
        return []
    # Salts and commitments need no seq: computed before taking the lock, to hold it less long.
    committed = [(fact, *_commit_contents(fact)) for fact in facts]
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT size, link, frontier FROM archive_chainhead WHERE id = 1 FOR UPDATE")
        size, link, frontier_blob = cursor.fetchone()
        cursor.execute("SELECT clock_timestamp()")  # read under the lock: times follow seq
        (sealed_at,) = cursor.fetchone()
        frontier = CompactRange.from_bytes(size, bytes(frontier_blob))
        link = bytes(link)
        entries: list[LedgerEntry] = []
        content_rows: list[tuple[int, str, bytes, bytes]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for seq, (fact, commits, rows) in enumerate(committed, start=size):
            envelope = build_envelope(seq, fact, sealed_at, commits)
            leaf = leaf_hash(envelope)
            link = chain_link(link, leaf)
            entries.append(_entry(seq, fact.kind, envelope, leaf, link, sealed_at, using))
            content_rows.extend((seq, *row) for row in rows)
            nodes.extend(node for node in frontier.append(leaf) if node[0] >= NODE_MIN_LEVEL)
        write = _copy if len(entries) >= COPY_FROM_ROWS else _insert
        write(cursor.cursor, ENTRY_TABLE, [_entry_row(e) for e in entries])
        write(cursor.cursor, CONTENT_TABLE, content_rows)
        write(cursor.cursor, NODE_TABLE, nodes)
        cursor.execute(
            "UPDATE archive_chainhead SET size = %s, link = %s, frontier = %s WHERE id = 1",
            [frontier.size, link, frontier.to_bytes()],
        )
    return entries


def _entry(
    seq: int, kind: str, envelope: bytes, leaf: bytes, link: bytes, sealed_at: Any, using: str
) -> LedgerEntry:
    """The stored row as a model instance, as a query would load it. Model.__init__ (field by
    field, with its signals) cost three times this for every entry, under the chain head's lock;
    LedgerEntry has no defaults or signal receivers it would have applied."""
    entry = LedgerEntry.__new__(LedgerEntry)
    entry.__dict__.update(
        seq=seq, kind=kind, envelope=envelope, leaf_hash=leaf, link=link, sealed_at=sealed_at
    )
    entry._state = ModelState()
    entry._state.adding = False
    entry._state.db = using
    return entry


# Small batches INSERT in one pipelined round trip; larger ones COPY, the fastest way PostgreSQL
# takes rows (its triggers fire either way).
COPY_FROM_ROWS = 8
ENTRY_TABLE = "archive_ledgerentry (seq, kind, envelope, leaf_hash, link, sealed_at)"
CONTENT_TABLE = "archive_content (seq, name, salt, content)"
NODE_TABLE = "archive_merklenode (level, index, hash)"


def _entry_row(entry: LedgerEntry) -> tuple[object, ...]:
    return (entry.seq, entry.kind, entry.envelope, entry.leaf_hash, entry.link, entry.sealed_at)


def _copy(raw_cursor: Any, table: str, rows: Sequence[tuple[object, ...]]) -> None:
    if rows:
        with raw_cursor.copy(f"COPY {table} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _insert(raw_cursor: Any, table: str, rows: Sequence[tuple[object, ...]]) -> None:
    if rows:
        marks = ", ".join(["%s"] * len(rows[0]))
        raw_cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608
