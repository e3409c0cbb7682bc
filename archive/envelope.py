"""The envelope: the canonical bytes a ledger entry's hashes cover (docs/LEDGER.md §2 to §4).

Pure functions, no Django: `verify_archive`'s worker processes import this module alone.
"""

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

ENVELOPE_VERSION = 1
ZERO_LINK = bytes(32)
SALT_BYTES = 32
SAFE_INTEGER = 2**53
SCALAR_TYPES = (str, int, bool, type(None))
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
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
    """sha256(tag ‖ salt ‖ content): hides the content, and binds it once it is disclosed.

    From a copy of sha256 already fed the name's tag: the few names in use are tagged once, not
    once per content (a quarter of checking a content row in verify_archive)."""
    digest = _tagged(name).copy()
    digest.update(salt)
    digest.update(content)
    return digest.digest()


@functools.lru_cache(maxsize=1024)  # bounded: verify_archive reads the names from the database
def _tagged(name: str) -> "hashlib._Hash":
    return hashlib.sha256(commitment_tag(name))


def chain_link(previous: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x02" + previous + leaf).digest()


def rfc3339(moment: datetime) -> str:
    """UTC with exactly six fractional digits, as PostgreSQL's timestamptz stores it."""
    global _last_stamp
    last = _last_stamp  # one batch shares one seal time: formatted once, not once per entry
    if last[0] == moment:
        return last[1]
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _last_stamp = (moment, text)
    return text


# (moment, its text); equal aware datetimes are the same instant, so the same UTC text
_last_stamp: tuple[datetime | None, str] = (None, "")


def build_envelope(
    seq: int, fact: Fact, sealed_at: datetime, commits: Mapping[str, bytes]
) -> bytes:
    """The canonical bytes that the leaf hash covers."""
    if fact.kind not in _KINDS and not _kind(fact.kind):
        raise LedgerError(f"invalid kind {fact.kind!r}")
    body: dict[str, Scalar] = {
        "v": ENVELOPE_VERSION,
        "seq": seq,
        "kind": fact.kind,
        "sealed_at": rfc3339(sealed_at),
    }
    for key, value in fact.fields.items():
        if key not in _FIELD_NAMES and not _field_name(key):
            raise LedgerError(f"invalid or reserved field name {key!r}")
        if type(value) not in SCALAR_TYPES:
            raise LedgerError(f"field {key!r} must be a string, integer, boolean or null")
        if type(value) is int and not -SAFE_INTEGER < value < SAFE_INTEGER:
            raise LedgerError(f"field {key!r} is outside the safe integer range")
        body[key] = value
    for name, digest in commits.items():
        body[COMMIT_PREFIX + name] = digest.hex()
    try:
        return canonical_json(body)
    except UnicodeEncodeError:
        raise LedgerError(f"fact {fact.kind!r} holds text that is not valid Unicode") from None


# Kinds and field names found valid, so that each is checked once per process, not once per fact.
_KINDS: set[str] = set()
_FIELD_NAMES: set[str] = set()


def _kind(kind: str) -> bool:
    if not isinstance(kind, str) or not NAME_RE.fullmatch(kind):
        return False
    if len(_KINDS) < 10_000:  # bounded, as _FIELD_NAMES
        _KINDS.add(kind)
    return True


def _field_name(key: str) -> bool:
    if key in RESERVED_KEYS or key.startswith(COMMIT_PREFIX) or not NAME_RE.fullmatch(key):
        return False
    if len(_FIELD_NAMES) < 10_000:  # bounded: field names are few, but callers choose them
        _FIELD_NAMES.add(key)
    return True


def canonical_json(body: Mapping[str, Scalar]) -> bytes:
    """RFC 8785 bytes of an envelope-shaped object: keys matching NAME_RE, scalar values.

    For that domain sorted compact `json` output is exactly RFC 8785 (ASCII keys sort the same by
    code point and by UTF-16 unit; strings escape alike; integers are plain), and five times
    faster than the general `rfc8785` package, which the tests check it against.
    """
    return _encode(body).encode()
