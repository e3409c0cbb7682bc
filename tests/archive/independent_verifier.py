"""An independent verifier of the ClientWindow ledger, written from docs/LEDGER.md alone.

It imports nothing from the `archive` package: it reads the tables with read-only SQL inside
one `REPEATABLE READ READ ONLY` snapshot and recomputes everything the specification states:

- §1/§4/§6.1: `seq` runs 0, 1, 2, … without a gap; `leaf_hash = sha256(0x00 ‖ envelope)`;
  `link = sha256(0x02 ‖ previous link ‖ leaf_hash)` from 32 zero bytes.
- §2/§6.1: the envelope is RFC 8785 canonical JSON of a flat object (strings, safe integers,
  booleans, null; keys of the stated pattern) whose `v`, `seq`, `kind`, `sealed_at` match the row.
- §4/§5/§6.2: each checkpoint's root is the RFC 6962 Merkle tree hash of the first `tree_size`
  leaves; its note is a C2SP signed note over a C2SP checkpoint whose origin, size and root agree
  with the row, signed with Ed25519 by a published verifier key (key id per §5).
- §3/§6.3: every `archive_content` row matches the `commit.<name>` value in its entry's envelope.
- §1 helper tables (optional evidence): `archive_merklenode` rows and `archive_chainhead`.

`verify(conn, verifier_keys)` returns human-readable problems, each starting with
`seq N:` or `checkpoint N:` (or `chainhead:` / `merklenode L/I:`); an empty list means intact.

Run as an auditor: `python independent_verifier.py DSN VERIFIER_KEY [VERIFIER_KEY …]`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ZERO = bytes(32)
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
HEX64 = re.compile(r"[0-9a-f]{64}")
TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
MAX_SAFE = 2**53
NODE_MIN_LEVEL = 8
EM_DASH = "\u2014"


def sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def leaf_hash(envelope: bytes) -> bytes:
    return sha256(b"\x00", envelope)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01", left, right)


def chain_link(previous: bytes, leaf: bytes) -> bytes:
    return sha256(b"\x02", previous, leaf)


def commitment(name: str, salt: bytes, content: bytes) -> bytes:
    return sha256(b"clientwindow:", name.encode("ascii"), b"\x00", salt, content)


def utc_text(moment: dt.datetime) -> str:
    """§2/§5 time format: UTC, always six fractional digits, `Z`."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- RFC 6962 Merkle tree hash -------------------------------------------------------------


def mth(leaves: list[bytes]) -> bytes:
    """The literal RFC 6962 §2.1 definition (leaves are already 0x00-prefixed leaf hashes)."""
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


@dataclass
class Frontier:
    """Roots of the perfect subtrees covering [0, size), largest first; O(log n) memory."""

    size: int = 0
    peaks: list[tuple[int, bytes]] = field(default_factory=list)  # (level, hash)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf; return the (level, index, hash) of every subtree it completed."""
        level, node, done = 0, leaf, []
        while self.peaks and self.peaks[-1][0] == level:
            _, left = self.peaks.pop()
            node, level = node_hash(left, node), level + 1
            done.append((level, self.size >> level, node))
        self.peaks.append((level, node))
        self.size += 1
        return done

    def root(self) -> bytes:
        """MTH of [0, size): fold the peaks from the smallest (rightmost) to the largest."""
        if not self.peaks:
            return sha256(b"")
        acc = self.peaks[-1][1]
        for _, peak in reversed(self.peaks[:-1]):
            acc = node_hash(peak, acc)
        return acc

    def to_bytes(self) -> bytes:
        return b"".join(peak for _, peak in self.peaks)


# --- verifier keys and signed notes (§5) ---------------------------------------------------


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public: Ed25519PublicKey


def key_id(name: str, public: bytes) -> bytes:
    return sha256(name.encode("utf-8"), b"\n", b"\x01", public)[:4]


def parse_verifier_key(text: str) -> VerifierKey:
    """`<key name>+<hex key id>+<base64(0x01 ‖ public key)>`; the key id must recompute."""
    name, hex_id, b64 = text.strip().split("+", 2)  # base64 may itself contain "+"
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 33 or raw[0] != 1:
        raise ValueError(f"verifier key {text!r} is not 0x01 ‖ 32-byte Ed25519 key")
    if bytes.fromhex(hex_id) != key_id(name, raw[1:]) or len(hex_id) != 8:
        raise ValueError(f"verifier key {text!r} has a wrong key id")
    return VerifierKey(name, key_id(name, raw[1:]), Ed25519PublicKey.from_public_bytes(raw[1:]))


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    time: str
    text: bytes
    signatures: list[tuple[str, bytes]]  # (key name, key id ‖ signature)


def split_note(note: str) -> tuple[str, list[str]]:
    """The signed text (ending in a newline) and the signature lines (C2SP signed-note)."""
    if not note.endswith("\n") or "\n\n" not in note:
        raise ValueError("note has no blank line before its signatures or no final newline")
    text, block = note.split("\n\n", 1)
    lines = block[:-1].split("\n")
    if not lines or any(not line.startswith(EM_DASH + " ") for line in lines):
        raise ValueError("a signature line does not start with an em dash and a space")
    return text + "\n", lines


def parse_signature(line: str) -> tuple[str, bytes]:
    name, b64 = line[2:].rsplit(" ", 1)
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 4 + 64:
        raise ValueError(f"signature by {name!r} is {len(raw)} bytes, not 4 + 64")
    return name, raw


def parse_checkpoint(note: str) -> Checkpoint:
    text, sig_lines = split_note(note)
    lines = text[:-1].split("\n")
    if len(lines) != 4:
        raise ValueError(f"checkpoint text has {len(lines)} lines, not 4")
    origin, size, root_b64, time_line = lines
    if not re.fullmatch(r"0|[1-9][0-9]*", size):
        raise ValueError(f"tree size {size!r} is not a decimal number")
    root = base64.b64decode(root_b64, validate=True)
    if len(root) != 32 or base64.b64encode(root).decode() != root_b64:
        raise ValueError("root line is not the padded base64 of 32 bytes")
    if not time_line.startswith("time ") or not TIME_PATTERN.fullmatch(time_line[5:]):
        raise ValueError(f"bad time line {time_line!r}")
    signatures = [parse_signature(line) for line in sig_lines]
    return Checkpoint(origin, int(size), root, time_line[5:], text.encode("utf-8"), signatures)


def signature_problems(cp: Checkpoint, keys: list[VerifierKey]) -> list[str]:
    """At least one signature by a known key must verify; a known key's bad one is a problem."""
    good, problems = 0, []
    for name, raw in cp.signatures:
        for key in keys:
            if key.name != name or key.key_id != raw[:4]:
                continue
            try:
                key.public.verify(raw[4:], cp.text)
            except InvalidSignature:
                problems.append(f"note does not verify under key {name}+{raw[:4].hex()}")
                continue
            good += 1
            if cp.origin != name:
                problems.append(f"origin {cp.origin!r} is not the key name {name!r}")
    if not good and not problems:
        problems.append("note has no signature by a published verifier key")
    return problems


# --- envelopes (§2) ------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-JSON number {name}")


def parse_envelope(envelope: bytes) -> dict[str, Any]:
    obj = json.loads(envelope.decode("utf-8"), parse_constant=_reject_constant)
    if not isinstance(obj, dict):
        raise ValueError("envelope is not a JSON object")
    return obj


def value_problem(key: str, value: Any) -> str | None:
    if not KEY_PATTERN.fullmatch(key):
        return f"key {key!r} does not match the key pattern"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        return None if abs(value) < MAX_SAFE else f"integer {key} out of range"
    return f"value of {key!r} is not a string, safe integer, boolean or null"


def envelope_problems(row: tuple[Any, ...], obj: dict[str, Any]) -> list[str]:
    seq, kind, envelope, _, _, sealed_at = row
    problems = [p for k, v in obj.items() if (p := value_problem(k, v))]
    try:
        if rfc8785.dumps(obj) != envelope:
            problems.append("envelope is not RFC 8785 canonical")
    except Exception as error:
        problems.append(f"envelope cannot be canonicalised: {error}")
    expected = {"v": 1, "seq": seq, "kind": kind, "sealed_at": utc_text(sealed_at)}
    for key, want in expected.items():
        got = obj.get(key)
        if got != want or type(got) is not type(want):
            problems.append(f"envelope {key} is {got!r}, row says {want!r}")
    for key, value in obj.items():
        if key.startswith("commit.") and not (isinstance(value, str) and HEX64.fullmatch(value)):
            problems.append(f"{key} is not 64 lowercase hex digits")
    return problems


# --- the checks of §6 ----------------------------------------------------------------------


@dataclass
class State:
    """What the entry pass leaves for the checkpoint, content and helper passes."""

    problems: list[str] = field(default_factory=list)
    roots: dict[int, bytes] = field(default_factory=dict)  # tree size -> recomputed root
    commits: dict[int, dict[str, str]] = field(default_factory=dict)
    nodes: dict[tuple[int, int], bytes] = field(default_factory=dict)
    frontier: Frontier = field(default_factory=Frontier)
    last_link: bytes = ZERO


def check_entry(state: State, row: tuple[Any, ...], expected_seq: int) -> None:
    seq, _, envelope, stored_leaf, stored_link, _ = row
    envelope, say = bytes(envelope), state.problems.append
    if seq != expected_seq:
        say(f"seq {expected_seq}: missing (next row has seq {seq})")
    try:
        obj = parse_envelope(envelope)
        state.problems += [f"seq {seq}: {p}" for p in envelope_problems(row, obj)]
        state.commits[seq] = {k[7:]: v for k, v in obj.items() if k.startswith("commit.")}
    except (UnicodeDecodeError, ValueError) as error:
        say(f"seq {seq}: envelope is not a UTF-8 JSON object: {error}")
    leaf = leaf_hash(envelope)
    if bytes(stored_leaf) != leaf:
        say(f"seq {seq}: leaf_hash does not match sha256(0x00 ‖ envelope)")
    if seq == expected_seq and bytes(stored_link) != chain_link(state.last_link, leaf):
        say(f"seq {seq}: link does not extend the chain")
    state.last_link = bytes(stored_link)  # resynchronise so one break is reported once


def check_entries(conn: psycopg.Connection, state: State, sizes: set[int]) -> None:
    query = (
        "SELECT seq, kind, envelope, leaf_hash, link, sealed_at"
        " FROM archive_ledgerentry ORDER BY seq"
    )
    if 0 in sizes:
        state.roots[0] = state.frontier.root()
    with conn.cursor(name="independent_verifier_entries") as cursor:
        cursor.itersize = 2000
        for row in cursor.execute(query):
            check_entry(state, row, state.frontier.size)
            for level, index, node in state.frontier.append(leaf_hash(bytes(row[2]))):
                if level >= NODE_MIN_LEVEL:
                    state.nodes[(level, index)] = node
            if state.frontier.size in sizes:
                state.roots[state.frontier.size] = state.frontier.root()


def check_checkpoint(state: State, row: tuple[Any, ...], keys: list[VerifierKey]) -> None:
    size, root, note, created_at = row
    say = state.problems.append
    if size not in state.roots:
        say(f"checkpoint {size}: beyond the last entry (ledger holds {state.frontier.size})")
    elif state.roots[size] != bytes(root):
        say(f"checkpoint {size}: root does not match the recomputed Merkle tree hash")
    try:
        cp = parse_checkpoint(note)
    except (ValueError, binascii.Error) as error:
        say(f"checkpoint {size}: note is malformed: {error}")
        return
    state.problems += [f"checkpoint {size}: {p}" for p in signature_problems(cp, keys)]
    if (cp.size, cp.root) != (size, bytes(root)):
        say(
            f"checkpoint {size}: note states size {cp.size} / root {cp.root.hex()[:16]}…,"
            f" not the row's"
        )
    if cp.time != utc_text(created_at):
        say(f"checkpoint {size}: note time {cp.time} is not created_at {utc_text(created_at)}")


def check_content(state: State, row: tuple[Any, ...]) -> None:
    seq, name, salt, content = row
    say = state.problems.append
    if seq not in state.commits:
        say(f"seq {seq}: content {name!r} has no (readable) ledger entry")
        return
    if len(bytes(salt)) != 32:
        say(f"seq {seq}: content {name!r} salt is {len(bytes(salt))} bytes, not 32")
    want = state.commits[seq].get(name)
    if want is None:
        say(f"seq {seq}: content {name!r} has no commit.{name} key in the envelope")
    elif commitment(name, bytes(salt), bytes(content)).hex() != want:
        say(f"seq {seq}: content {name!r} does not match its commitment")


def check_contents(conn: psycopg.Connection, state: State) -> None:
    query = "SELECT seq, name, salt, content FROM archive_content ORDER BY seq, name"
    seen: set[tuple[int, str]] = set()
    with conn.cursor(name="independent_verifier_contents") as cursor:
        for row in cursor.execute(query):
            if (row[0], row[1]) in seen:
                state.problems.append(f"seq {row[0]}: content {row[1]!r} appears twice")
            seen.add((row[0], row[1]))
            check_content(state, row)


def check_helpers(conn: psycopg.Connection, state: State) -> None:
    """§1 helper tables: not evidence, but they must agree with the recomputation."""
    say = state.problems.append
    stored = {
        (lv, ix): bytes(h)
        for lv, ix, h in conn.execute("SELECT level, index, hash FROM archive_merklenode")
    }
    for level, index in sorted(stored.keys() | state.nodes.keys()):
        if stored.get((level, index)) != state.nodes.get((level, index)):
            say(f"merklenode {level}/{index}: missing, extra or different from recomputation")
    head = conn.execute(
        "SELECT size, link, frontier FROM archive_chainhead WHERE id = 1"
    ).fetchone()
    want = (state.frontier.size, state.last_link, state.frontier.to_bytes())
    if head is None or (head[0], bytes(head[1]), bytes(head[2])) != want:
        say(f"chainhead: does not agree with the ledger's end (size {state.frontier.size})")


@contextmanager
def snapshot(conn: psycopg.Connection) -> Iterator[None]:
    """§6: one `REPEATABLE READ READ ONLY` transaction, rolled back afterwards."""
    saved = conn.autocommit
    conn.autocommit = True
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.autocommit = saved


def verify(conn: psycopg.Connection, verifier_keys: list[str], helpers: bool = True) -> list[str]:
    """Every problem found (empty = intact); each names a seq or a checkpoint tree size."""
    keys = [parse_verifier_key(text) for text in verifier_keys]
    state = State()
    with snapshot(conn):
        checkpoints = conn.execute(
            "SELECT tree_size, root, note, created_at FROM archive_checkpoint ORDER BY tree_size"
        ).fetchall()
        check_entries(conn, state, {row[0] for row in checkpoints})
        for row in checkpoints:
            check_checkpoint(state, row, keys)
        check_contents(conn, state)
        if helpers:
            check_helpers(conn, state)
    return state.problems


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: independent_verifier.py DSN VERIFIER_KEY [VERIFIER_KEY …]", file=sys.stderr)  # noqa: T201
        return 2
    with psycopg.connect(argv[1]) as conn:
        problems = verify(conn, argv[2:])
    for problem in problems:
        print(problem)  # noqa: T201
    if not problems:
        print("intact")  # noqa: T201
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
