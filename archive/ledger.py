"""The ledger: the archive's only write path (docs/LEDGER.md is its public specification).

`append()` seals a batch of facts: it locks the chain head, gives each fact the next `seq`,
commits its contents with fresh salts, builds its RFC 8785 envelope, and writes entries, contents
and Merkle nodes in the caller's transaction. PostgreSQL refuses every other change to these
tables for the runtime role, and its insert trigger refuses an entry whose hashes or link are
wrong, so a bug here cannot fork or break the chain either.
"""

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import rfc8785
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from archive.merkle import CompactRange, leaf_hash
from archive.models import LedgerEntry

ENVELOPE_VERSION = 1
ZERO_LINK = bytes(32)
SALT_BYTES = 32
# Subtrees of 2**8 leaves and larger are stored (archive_merklenode); proofs read those rows.
NODE_MIN_LEVEL = 8
RESERVED_KEYS = frozenset({"v", "seq", "kind", "sealed_at"})
COMMIT_PREFIX = "commit."
NAME_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")

Scalar = str | int | bool | None


class LedgerError(ValueError):
    """A fact that cannot be sealed as given (the caller's mistake, not the archive's)."""


@dataclass(frozen=True)
class Fact:
    """What a caller asks to seal: a kind, public scalar fields, and named private contents."""

    kind: str
    fields: Mapping[str, Scalar] = field(default_factory=dict)
    contents: Mapping[str, bytes] = field(default_factory=dict)


def commitment_tag(name: str) -> bytes:
    """The domain tag that keeps commitments to different kinds of content apart."""
    return b"clientwindow:" + name.encode("ascii") + b"\x00"


def commitment(name: str, salt: bytes, content: bytes) -> bytes:
    """sha256(tag ‖ salt ‖ content): hides the content, and binds it once it is disclosed."""
    return hashlib.sha256(commitment_tag(name) + salt + content).digest()


def chain_link(previous: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x02" + previous + leaf).digest()


def rfc3339(moment: datetime) -> str:
    """UTC with exactly six fractional digits, as PostgreSQL's timestamptz stores it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_envelope(
    seq: int, fact: Fact, sealed_at: datetime, commits: Mapping[str, bytes]
) -> bytes:
    """The canonical bytes that the leaf hash covers."""
    if not NAME_RE.fullmatch(fact.kind):
        raise LedgerError(f"invalid kind {fact.kind!r}")
    body: dict[str, Scalar] = {
        "v": ENVELOPE_VERSION,
        "seq": seq,
        "kind": fact.kind,
        "sealed_at": rfc3339(sealed_at),
    }
    for key, value in fact.fields.items():
        if key in RESERVED_KEYS or key.startswith(COMMIT_PREFIX) or not NAME_RE.fullmatch(key):
            raise LedgerError(f"invalid or reserved field name {key!r}")
        if not (value is None or isinstance(value, str | int | bool)):
            raise LedgerError(f"field {key!r} must be a string, integer, boolean or null")
        body[key] = value
    for name, digest in commits.items():
        body[COMMIT_PREFIX + name] = digest.hex()
    try:
        return rfc8785.dumps(body)
    except rfc8785.CanonicalizationError as exc:
        raise LedgerError(f"fact {fact.kind!r} cannot be canonicalised: {exc}") from None


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
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT size, link, frontier FROM archive_chainhead WHERE id = 1 FOR UPDATE")
        size, link, frontier_blob = cursor.fetchone()
        cursor.execute("SELECT clock_timestamp()")
        (sealed_at,) = cursor.fetchone()
        frontier = CompactRange.from_bytes(size, bytes(frontier_blob))
        link = bytes(link)
        entries: list[LedgerEntry] = []
        content_rows: list[tuple[int, str, bytes, bytes]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for seq, fact in enumerate(facts, start=size):
            commits, rows = _commit_contents(fact)
            envelope = build_envelope(seq, fact, sealed_at, commits)
            leaf = leaf_hash(envelope)
            link = chain_link(link, leaf)
            entries.append(LedgerEntry(seq, fact.kind, envelope, leaf, link, sealed_at))
            content_rows.extend((seq, *row) for row in rows)
            nodes.extend(node for node in frontier.append(leaf) if node[0] >= NODE_MIN_LEVEL)
        _write(cursor.cursor, entries, content_rows, nodes)
        cursor.execute(
            "UPDATE archive_chainhead SET size = %s, link = %s, frontier = %s WHERE id = 1",
            [frontier.size, link, frontier.to_bytes()],
        )
    for entry in entries:
        entry._state.adding = False
        entry._state.db = using
    return entries


def _write(
    raw_cursor: object,
    entries: list[LedgerEntry],
    contents: list[tuple[int, str, bytes, bytes]],
    nodes: list[tuple[int, int, bytes]],
) -> None:
    """COPY the batch in: the fastest way PostgreSQL takes rows, and triggers still fire."""
    with raw_cursor.copy(  # type: ignore[attr-defined]
        "COPY archive_ledgerentry (seq, kind, envelope, leaf_hash, link, sealed_at) FROM STDIN"
    ) as copy:
        for e in entries:
            copy.write_row((e.seq, e.kind, e.envelope, e.leaf_hash, e.link, e.sealed_at))
    if contents:
        with raw_cursor.copy(  # type: ignore[attr-defined]
            "COPY archive_content (seq, name, salt, content) FROM STDIN"
        ) as copy:
            for row in contents:
                copy.write_row(row)
    if nodes:
        with raw_cursor.copy(  # type: ignore[attr-defined]
            "COPY archive_merklenode (level, index, hash) FROM STDIN"
        ) as copy:
            for node in nodes:
                copy.write_row(node)
