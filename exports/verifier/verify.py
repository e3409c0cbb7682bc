#!/usr/bin/env python3
"""Verify a ClientWindow evidence bundle offline: `python3 verify.py BUNDLE.zip [--key KEY]`
or `python3 verify.py DIRECTORY` (an unpacked bundle). Python 3.9 or later, standard library only.

It trusts nothing in the bundle except the verifier key, and that only until you pin it: compare
verifier-key.txt with the key the archive publishes (its portal's home page, or
`manage.py export_public_key`), then pass it with --key. It stops at the first failure:

1. the ZIP: every byte belongs to a member or to the directory, the two copies of each header
   agree, and every member inflates to exactly its size and CRC-32;
2. manifest.sig: a signed note by the key over the SHA-256 of manifest.json;
3. the files: each one manifest.json lists exists with its size and SHA-256, and no other;
4. checkpoint.note: a signed note by the key stating the manifest's tree size and root; and,
   when the bundle carries the checkpoint's RFC 3161 timestamp token (checkpoint.tst), that
   the token's message imprint is the SHA-256 of checkpoint.note, and its genTime. The token's
   signature and the TSA's certificate chain are checked by OpenSSL (VERIFY.md), not here;
5. the entries: each envelope's leaf hash, its RFC 9162 inclusion proof to that root, and each
   disclosed content against the commitment in the envelope (the archive's docs/LEDGER.md);
   a subject access export (scope "redact_others") withholds the contents that may name other
   people: each withheld one must be committed to in its envelope, and they are counted;
6. the attachments: each media file's SHA-256 is the one its ledger entry commits to.

Exit status 0 when everything holds, 1 naming the first failure, 2 for a usage error. Its
memory does not grow with the bundle: what it must remember per file and per entry is kept in a
temporary SQLite database (the `Store`), in memory only where Python has no sqlite3.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

try:
    import sqlite3
except ImportError:  # some builds leave it out: the verifier then keeps its index in memory
    sqlite3 = None  # type: ignore[assignment]

MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
FORMAT, VERSION = "clientwindow-evidence-bundle", 1
SIGNATURE_TITLE = "clientwindow export manifest"
TOKEN, TSA_CA = "checkpoint.tst", "tsa-ca.pem"
SECTIONS = ("files", "attachments", "entries")
# "import": a phone export's line that repeats the message (a `message.imported` entry)
ANNOTATIONS = ("edit", "revocation", "reaction", "status", "attachment", "import")
WITHHELD = "withheld"  # how a content withheld from a redacted export's manifest begins
READ = 1 << 20


class Failure(Exception):
    """The first thing that does not hold; its message is the report's last line."""


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- Ed25519, RFC 8032

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493  # the order of the base point
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _add(a: Point, b: Point) -> Point:
    a1 = (a[1] - a[0]) * (b[1] - b[0]) % _P
    b1 = (a[1] + a[0]) * (b[1] + b[0]) % _P
    c1 = 2 * a[3] * b[3] * _D % _P
    d1 = 2 * a[2] * b[2] % _P
    e, f, g, h = b1 - a1, d1 - c1, d1 + c1, b1 + a1
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _multiply(scalar: int, point: Point) -> Point:
    result: Point = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point, scalar = _add(point, point), scalar >> 1
    return result


def _same(a: Point, b: Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    return _P - x if x & 1 != sign else x


def _decode_point(encoded: bytes) -> Point | None:
    y = int.from_bytes(encoded, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_G = _decode_point((4 * pow(5, _P - 2, _P) % _P).to_bytes(32, "little")) or (0, 1, 1, 0)


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 §5.1.7: [S]B = R + [SHA-512(R ‖ A ‖ M)]A, with S < L and canonical points."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a, r = _decode_point(public), _decode_point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little")
    return _same(_multiply(s, _G), _add(r, _multiply(k % _L, a)))


# --------------------------------------------------------------------------- keys and notes


def unbase64(text: str, what: str) -> bytes:
    """Strict base64: the alphabet, padding, and no spare bits (one encoding per value)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Failure(f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise Failure(f"{what} is not canonical base64")
    return raw


def unhex(text: object, what: str, size: int | None = None) -> bytes:
    if not isinstance(text, str):
        raise Failure(f"{what} is not a hex string")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise Failure(f"{what} is not hex") from None
    if raw.hex() != text or (size is not None and len(raw) != size):
        raise Failure(f"{what} is not {size or 'some'} bytes in lowercase hex")
    return raw


class Key:
    """A signed-note verifier key `<name>+<hex key id>+<base64(0x01 ‖ Ed25519 public key)>`."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        parts = self.text.split("+", 2)  # base64 may itself contain "+"
        if len(parts) != 3 or not parts[0] or any(ch.isspace() for ch in parts[0]):
            raise Failure(f"malformed verifier key {self.text!r}")
        self.name, key_id, blob = parts[0], parts[1], unbase64(parts[2], "the verifier key")
        if len(blob) != 33 or blob[:1] != b"\x01":
            raise Failure("the verifier key is not an Ed25519 key")
        self.public = blob[1:]
        self.key_id = hashlib.sha256(self.name.encode() + b"\n" + blob).digest()[:4]
        if self.key_id.hex() != key_id:
            raise Failure("the verifier key's id does not match its key")

    def open(self, note: str, what: str) -> list[str]:
        """The note's text lines, if a signature by this key verifies (C2SP signed-note)."""
        text, blank, signatures = note.partition("\n\n")
        if not blank or not text or not signatures.endswith("\n"):
            raise Failure(f"{what} is not a signed note")
        text += "\n"
        signed = False
        for line in signatures[:-1].split("\n"):
            name, space, encoded = line[2:].partition(" ")
            if not line.startswith("\u2014 ") or not space:
                raise Failure(f"{what} has a malformed signature line")
            blob = unbase64(encoded, f"{what}'s signature")
            if (name, blob[:4]) == (self.name, self.key_id) and len(blob) == 68:
                if not ed25519_verify(self.public, text.encode(), blob[4:]):
                    raise Failure(f"{what}: the signature by {name} does not verify")
                signed = True
        if not signed:
            raise Failure(f"{what} is not signed by {self.name}")
        return text[:-1].split("\n")


# Ed25519 SubjectPublicKeyInfo (RFC 8410) is this DER prefix followed by the 32-byte key.
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def pem_public_key(text: str) -> bytes:
    lines = text.strip().split("\n")
    if lines[:1] != ["-----BEGIN PUBLIC KEY-----"] or lines[-1:] != ["-----END PUBLIC KEY-----"]:
        raise Failure("public-key.pem is not a PEM public key")
    der = unbase64("".join(lines[1:-1]), "public-key.pem")
    if len(der) != 44 or not der.startswith(SPKI_PREFIX):
        raise Failure("public-key.pem is not an Ed25519 public key")
    return der[len(SPKI_PREFIX) :]


# --------------------------------------------------------------------------- RFC 9162 Merkle tree


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_proof(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root an inclusion proof implies for leaf `index` of `size`."""
    if not 0 <= index < size:
        raise Failure(f"entry {index} is not in a tree of size {size}")
    fn, sn, result = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise Failure(f"entry {index}: the inclusion proof is too long")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise Failure(f"entry {index}: the inclusion proof is too short")
    return result


# --------------------------------------------------------------------------- RFC 3161 tokens

# The DER contents of the object identifiers a timestamp token must name.
SIGNED_DATA = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2
TST_INFO = bytes.fromhex("2a864886f70d0109100104")  # 1.2.840.113549.1.9.16.1.4
SHA256_OID = bytes.fromhex("608648016503040201")  # 2.16.840.1.101.3.4.2.1
SEQUENCE, SET, OID, INTEGER, OCTETS = 0x30, 0x31, 0x06, 0x02, 0x04  # DER tags
NULL, TIME, EXPLICIT0 = 0x05, 0x18, 0xA0  # TIME: GeneralizedTime; EXPLICIT0: [0] EXPLICIT


class Der:
    """A strict DER reader over the contents of one element: definite lengths in their shortest
    form, and nothing left over (`done`). Anything else is a Failure naming `what`."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.at, self.what = data, 0, what

    def element(self, tag: int) -> bytes:
        """The contents of the next element, which must have this tag."""
        if self.at + 2 > len(self.data):
            raise Failure(f"{self.what} ends early")
        found, length = self.data[self.at], self.data[self.at + 1]
        if found != tag:
            raise Failure(f"{self.what}: tag {found:#04x} where {tag:#04x} belongs")
        start = self.at + 2
        if length & 0x80:
            count = length & 0x7F
            raw = self.data[start : start + count]
            if not 1 <= count <= 4 or len(raw) != count:
                raise Failure(f"{self.what}: an indefinite or oversized length")
            length, start = int.from_bytes(raw, "big"), start + count
            if length < 0x80 or raw[0] == 0:
                raise Failure(f"{self.what}: a length not in its shortest form")
        if start + length > len(self.data):
            raise Failure(f"{self.what} ends early")
        self.at = start + length
        return self.data[start : self.at]

    def inner(self, tag: int) -> Der:
        return Der(self.element(tag), self.what)

    def peek(self) -> int | None:
        return self.data[self.at] if self.at < len(self.data) else None

    def skip_rest(self) -> None:
        """The remaining elements, whatever their tags (each still well-formed)."""
        while self.at < len(self.data):
            self.element(self.data[self.at])

    def done(self) -> None:
        if self.at != len(self.data):
            raise Failure(f"{self.what}: bytes after the end")


def read_token(der: bytes) -> tuple[bytes, str]:
    """(SHA-256 message imprint, genTime as RFC 3339) of a DER TimeStampToken (RFC 3161
    §2.4.2): a CMS ContentInfo of SignedData whose encapsulated content is a TSTInfo."""
    top = Der(der, TOKEN)
    content_info = top.inner(SEQUENCE)
    top.done()
    if content_info.element(OID) != SIGNED_DATA:
        raise Failure(f"{TOKEN} is not CMS SignedData")
    wrapped = content_info.inner(EXPLICIT0)
    content_info.done()
    signed = wrapped.inner(SEQUENCE)
    wrapped.done()
    signed.element(INTEGER)  # version
    signed.element(SET)  # digestAlgorithms
    encapsulated = signed.inner(SEQUENCE)
    signed.skip_rest()  # certificates, CRLs and signerInfos: OpenSSL checks the signature
    if encapsulated.element(OID) != TST_INFO:
        raise Failure(f"{TOKEN} does not hold a TSTInfo")
    explicit = encapsulated.inner(EXPLICIT0)
    encapsulated.done()
    body = Der(explicit.element(OCTETS), f"{TOKEN}'s TSTInfo")
    explicit.done()
    return read_tst_info(body)


def read_tst_info(body: Der) -> tuple[bytes, str]:
    info = body.inner(SEQUENCE)
    body.done()
    if info.element(INTEGER) != b"\x01":
        raise Failure(f"{TOKEN}'s TSTInfo is not version 1")
    info.element(OID)  # the TSA's policy
    imprint = info.inner(SEQUENCE)
    algorithm = imprint.inner(SEQUENCE)
    if algorithm.element(OID) != SHA256_OID:
        raise Failure(f"{TOKEN}'s message imprint is not a SHA-256 hash")
    if algorithm.peek() is not None and algorithm.element(NULL) != b"":
        raise Failure(f"{TOKEN}'s hash algorithm has parameters")
    algorithm.done()
    hashed = imprint.element(OCTETS)
    imprint.done()
    if len(hashed) != 32:
        raise Failure(f"{TOKEN}'s message imprint is not 32 bytes")
    info.element(INTEGER)  # serialNumber
    gen_time = generalized_time(info.element(TIME))
    info.skip_rest()  # accuracy, ordering, nonce, tsa, extensions
    return hashed, gen_time


def generalized_time(raw: bytes) -> str:
    """DER GeneralizedTime (YYYYMMDDHHMMSS[.fff]Z, no trailing zero) as the manifest writes a
    time: RFC 3339 UTC with six fractional digits."""
    text = raw.decode("ascii", "replace")
    whole, dot, fraction = text[:-1].partition(".")
    if (
        not text.endswith("Z")
        or len(whole) != 14
        or not (whole + fraction).isdigit()
        or (dot and (not fraction or fraction.endswith("0")))
    ):
        raise Failure(f"{TOKEN}'s genTime {text!r} is not a DER GeneralizedTime")
    year = int(whole[:4])
    month, day, hour, minute, second = (int(whole[i : i + 2]) for i in range(4, 14, 2))
    try:
        micro = int((fraction + "000000")[:6])
        moment = datetime(year, month, day, hour, minute, second, micro)
    except ValueError:
        raise Failure(f"{TOKEN}'s genTime {text!r} is not a date and time") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fingerprints(pem: bytes) -> list[str]:
    """The SHA-256 fingerprint of each certificate in a PEM file, as `openssl x509` prints it."""
    found = []
    for block in pem.decode("ascii", "replace").split("-----BEGIN CERTIFICATE-----")[1:]:
        body, end, _ = block.partition("-----END CERTIFICATE-----")
        if not end:
            raise Failure(f"{TSA_CA} has a certificate without its END line")
        der = unbase64("".join(body.split()), TSA_CA)
        found.append(":".join(f"{b:02X}" for b in hashlib.sha256(der).digest()))
    if not found:
        raise Failure(f"{TSA_CA} holds no PEM certificate")
    return found


# --------------------------------------------------------------------------- bounded memory


class Store:
    """What the verifier must remember per file and per entry (the files listed, the members,
    the attachments, the entries met), kept in an SQLite database in a temporary directory, so
    that its memory does not grow with the bundle. Where Python has no sqlite3, or no temporary
    directory can be written, it keeps them in memory: the same checks, for any bundle that
    fits (`in_memory` says why)."""

    def __init__(self) -> None:
        self.db: Any = None
        self.folder: Any = None
        self.tables = 0
        self.in_memory = "" if sqlite3 is not None else "this Python has no sqlite3 module"
        if self.in_memory:
            return
        try:
            self.folder = tempfile.TemporaryDirectory(prefix="clientwindow-verify-")
            path = Path(self.folder.name) / "index.sqlite3"
            self.db = sqlite3.connect(str(path), isolation_level=None)
            # A scratch database, thrown away at the end: no journal, no fsync, one transaction.
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-8192"):
                self.db.execute("PRAGMA " + pragma)
            self.db.execute("BEGIN")
        except (OSError, sqlite3.Error) as exc:
            self.__exit__()
            self.db, self.folder = None, None
            self.in_memory = f"no temporary database could be made ({exc})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        if self.db is not None:
            self.db.close()
        if self.folder is not None:
            self.folder.cleanup()

    def table(self) -> Table:
        self.tables += 1
        return Table(self.db, f"t{self.tables}")

    def seqs(self) -> Seqs:
        self.tables += 1
        return Seqs(self.db, f"t{self.tables}")


TABLE_SQL = {
    "add": "INSERT OR IGNORE INTO %s VALUES (?, ?)",
    "get": "SELECT v FROM %s WHERE k = ?",
    "has": "SELECT 1 FROM %s WHERE k = ?",
    "pop": "DELETE FROM %s WHERE k = ?",
    "len": "SELECT count(*) FROM %s",
    "all": "SELECT k, v FROM %s ORDER BY rowid",
    "add_seq": "INSERT OR IGNORE INTO %s VALUES (?)",
}
# Across two of the store's tables: the first keys with a prefix that the second lacks, and
# each key with its value in both (in the order added to the first).
NOT_IN = (
    "SELECT k FROM %s AS a WHERE substr(a.k, 1, length(?)) = ?"
    " AND NOT EXISTS (SELECT 1 FROM %s AS b WHERE b.k = a.k) ORDER BY a.rowid"
)
JOIN = "SELECT a.k, a.v, b.v FROM %s AS a LEFT JOIN %s AS b ON b.k = a.k ORDER BY a.rowid"


class Table:
    """Text keys in the order added, each with a JSON value: a dict on disk."""

    def __init__(self, db: Any, name: str) -> None:
        self.db, self.name, self.memory = db, name, {}  # type: Any, str, dict[str, str]
        # `name` is the store's own (t1, t2, ...), never a bundle's text.
        self.sql = {op: statement % name for op, statement in TABLE_SQL.items()}
        if db is not None:
            db.execute(f"CREATE TABLE {name} (k TEXT PRIMARY KEY, v TEXT NOT NULL)")

    def add(self, key: str, value: Any) -> bool:
        """Add `key` unless it is there already; whether it was added."""
        text = json.dumps(value)
        if self.db is None:
            return self.memory.setdefault(key, text) is text
        return bool(self.db.execute(self.sql["add"], (key, text)).rowcount == 1)

    def get(self, key: str) -> Any:
        if self.db is None:
            text = self.memory.get(key)
        else:
            row = self.db.execute(self.sql["get"], (key,)).fetchone()
            text = row and row[0]
        return None if text is None else json.loads(text)

    def pop(self, key: str) -> Any:
        value = self.get(key)
        if self.db is None:
            self.memory.pop(key, None)
        else:
            self.db.execute(self.sql["pop"], (key,))
        return value

    def __contains__(self, key: object) -> bool:
        if self.db is None:
            return key in self.memory
        return self.db.execute(self.sql["has"], (key,)).fetchone() is not None

    def __len__(self) -> int:
        if self.db is None:
            return len(self.memory)
        return int(self.db.execute(self.sql["len"]).fetchone()[0])

    def items(self) -> Iterator[tuple[str, Any]]:
        """In the order added; read in batches, whatever the table's size."""
        if self.db is None:
            for key, text in list(self.memory.items()):
                yield key, json.loads(text)
            return
        cursor = self.db.execute(self.sql["all"])
        while rows := cursor.fetchmany(1000):
            for key, text in rows:
                yield key, json.loads(text)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.items())

    def first_not_in(self, other: Table, prefix: str = "", skip: tuple[str, ...] = ()) -> Any:
        """The first key starting with `prefix` that `other` lacks (`skip` aside), or None."""
        if self.db is None:
            keys: Iterator[str] = (k for k in self.memory if k not in other.memory)
        else:
            found = self.db.execute(NOT_IN % (self.name, other.name), (prefix, prefix))
            keys = (k for (k,) in iter(found.fetchone, None))
        return next((k for k in keys if k.startswith(prefix) and k not in skip), None)

    def joined(self, other: Table) -> Iterator[tuple[str, Any, Any]]:
        """Each key with its value here and in `other` (None where it has none)."""
        if self.db is None:
            rows: Any = ((k, v, other.memory.get(k)) for k, v in list(self.memory.items()))
        else:
            rows = self.db.execute(JOIN % (self.name, other.name))
        for key, value, also in rows:
            yield key, json.loads(value), None if also is None else json.loads(also)


class Seqs:
    """A set of integers on disk."""

    def __init__(self, db: Any, name: str) -> None:
        self.db, self.memory = db, set()  # type: Any, set[int]
        self.add_sql = TABLE_SQL["add_seq"] % name
        if db is not None:
            db.execute(f"CREATE TABLE {name} (seq INTEGER PRIMARY KEY)")

    def add(self, seq: int) -> bool:
        """Add `seq` unless it is there already; whether it was added."""
        if self.db is None:
            added = seq not in self.memory
            self.memory.add(seq)
            return added
        return bool(self.db.execute(self.add_sql, (seq,)).rowcount == 1)


# --------------------------------------------------------------------------- reading a bundle


def safe_name(name: str) -> str:
    parts = name.split("/")
    if "\\" in name or any(p in ("", ".", "..") for p in parts) or ":" in parts[0]:
        raise Failure(f"unsafe file name {name!r}")
    return name


class Directory:
    """An unpacked bundle: every regular file below `root` (symbolic links are refused)."""

    def __init__(self, root: Path, store: Store) -> None:
        self.root = root
        self.names = store.table()
        folders = [root]
        while folders:  # scandir, not walk: no folder's listing is held, however many files
            with os.scandir(folders.pop()) as found:
                for entry in found:
                    path = Path(entry.path)
                    if entry.is_symlink() or not (entry.is_dir() or entry.is_file()):
                        raise Failure(f"{path.relative_to(root)}: not a regular file")
                    if entry.is_dir():
                        folders.append(path)
                    else:
                        self.names.add(safe_name(path.relative_to(root).as_posix()), None)
        self.description = f"directory {root} ({len(self.names)} files)"

    def chunks(self, name: str, _: Any = None) -> Iterator[bytes]:
        with (self.root / name).open("rb") as handle:
            while block := handle.read(READ):
                yield block


LOCAL = struct.Struct("<IHHHHHIIIHH")
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
END = struct.Struct("<IHHHHIIH")
END64 = struct.Struct("<IQHHIIQQQQ")
LOCATOR = struct.Struct("<IIQI")
MAX16, MAX32 = 0xFFFF, 0xFFFFFFFF
# The bundle writer's fixed member attributes (exports/target.py): made on Unix, mode 0644.
UNIX, MODE = 3, 0o644 << 16


class Member:
    __slots__ = ("compressed", "crc", "data", "fields", "method", "name", "offset", "size")

    def __init__(self, name: str, fields: tuple[int, ...], sizes: list[int]) -> None:
        self.name, self.fields = name, fields  # (version, flags, method, time, date, crc)
        self.method, self.crc = fields[2], fields[5]
        self.size, self.compressed, self.offset = sizes
        self.data = 0


# The longest central directory record: its fixed part and three fields of up to 65,535 bytes.
LONGEST = CENTRAL.size + 3 * MAX16


class Zip:
    """A bundle ZIP, parsed strictly: any byte that is not accounted for is a failure. Its
    directory is read a block at a time and its members kept in the store, not in memory."""

    def __init__(self, path: Path, store: Store) -> None:
        self.path = path
        self.names = store.table()  # name -> [data offset, compressed size, size, method, crc]
        with path.open("rb") as handle, path.open("rb") as local:
            count, start, end = self._end(handle)
            handle.seek(start)
            directory, at, left, position = b"", 0, end - start, 0
            for _ in range(count):
                if left and len(directory) - at < LONGEST:
                    block = handle.read(min(left, READ))
                    directory, at, left = directory[at:] + block, 0, left - len(block)
                member, at = self._central(directory, at)
                position = self._local(local, member, position)
                where = [member.data, member.compressed, member.size, member.method, member.crc]
                if not self.names.add(member.name, where):
                    raise Failure(f"ZIP: {member.name} appears twice")
        if left or at != len(directory) or position != start:
            raise Failure("ZIP: bytes outside any member or the central directory")
        self.description = f"ZIP {path} ({count} members)"

    @staticmethod
    def _end(handle: Any) -> tuple[int, int, int]:
        """(members, central directory start, its end) from the end records."""
        length = handle.seek(0, 2)
        if length < END.size:
            raise Failure("not a ZIP file")
        handle.seek(length - END.size)
        sig, disk, cd_disk, on_disk, count, size, start, comment = END.unpack(handle.read(END.size))
        if sig != 0x06054B50 or disk or cd_disk or comment or on_disk != count:
            raise Failure("ZIP: no plain end record at the very end of the file")
        end = length - END.size
        if end >= LOCATOR.size + END64.size:
            handle.seek(end - LOCATOR.size)
            locator = LOCATOR.unpack(handle.read(LOCATOR.size))
            if locator[0] == 0x07064B50:
                record = end - LOCATOR.size - END64.size
                if locator[1:] != (0, record, 1):
                    raise Failure("ZIP: malformed ZIP64 locator")
                handle.seek(record)
                fields = END64.unpack(handle.read(END64.size))
                if fields[:8] != (0x06064B50, 44, 45, 45, 0, 0, fields[6], fields[6]):
                    raise Failure("ZIP: malformed ZIP64 end record")
                real = fields[7:]
                if (count, size, start) != (
                    min(real[0], MAX16),
                    *(min(v, MAX32) for v in real[1:]),
                ):
                    raise Failure("ZIP: the end records disagree")
                count, size, start, end = real[0], real[1], real[2], record
        if start + size != end:
            raise Failure("ZIP: the central directory is not where the end record says")
        return count, start, end

    @staticmethod
    def _central(directory: bytes, at: int) -> tuple[Member, int]:
        if at + CENTRAL.size > len(directory):
            raise Failure("ZIP: the central directory is truncated")
        f = CENTRAL.unpack_from(directory, at)
        (sig, made, need, flags, method, time, date, crc, compressed, size) = f[:10]
        name_length, extra_length, comment, disk, internal, external, offset = f[10:]
        at, name_at = at + CENTRAL.size + name_length + extra_length, at + CENTRAL.size
        if sig != 0x02014B50 or at > len(directory):
            raise Failure("ZIP: malformed central directory")
        name = _zip_name(directory[name_at : name_at + name_length], flags)
        extra = directory[name_at + name_length : at]
        if made != (UNIX << 8 | need) or (comment, disk, internal, external) != (0, 0, 0, MODE):
            raise Failure(f"ZIP: {name} has unexpected attributes")
        if flags & ~0x0806 or method not in (0, 8):
            raise Failure(f"ZIP: {name} uses an unsupported feature (flags {flags:#x})")
        sizes = _zip64(extra, [size, compressed, offset], name)
        return Member(name, (need, flags, method, time, date, crc), sizes), at

    @staticmethod
    def _local(handle: Any, member: Member, position: int) -> int:
        """Check the local header at `position` against the central one; return the data's end."""
        if member.offset != position:
            raise Failure(f"ZIP: {member.name} is not where the central directory says")
        handle.seek(position)
        f = LOCAL.unpack(handle.read(LOCAL.size))
        name = handle.read(f[9])
        extra = handle.read(f[10])
        if f[0] != 0x04034B50 or f[1:7] != member.fields or name != member.name.encode():
            raise Failure(f"ZIP: {member.name}'s local header differs from the central directory")
        if _zip64(extra, [f[8], f[7]], member.name) != [member.size, member.compressed]:
            raise Failure(f"ZIP: {member.name}'s local sizes differ from the central directory")
        member.data = position + LOCAL.size + f[9] + f[10]
        return member.data + member.compressed

    def chunks(self, name: str, where: Any = None) -> Iterator[bytes]:
        """The member's bytes, checking that they inflate to exactly its size and CRC-32
        (`where`: its row in `names`, when the caller has it already)."""
        data, left, stated, method, stated_crc = where or self.names.get(name)
        inflate = zlib.decompressobj(-15) if method == 8 else None
        crc, size = 0, 0
        with self.path.open("rb") as handle:
            handle.seek(data)
            try:
                while left:
                    raw = handle.read(min(left, READ))
                    if not raw:
                        raise Failure(f"ZIP: {name} is truncated")
                    left -= len(raw)
                    while raw:  # inflate at most READ bytes at a time: no ZIP bomb fills memory
                        block = inflate.decompress(raw, READ) if inflate else raw
                        raw = inflate.unconsumed_tail if inflate else b""
                        crc, size = zlib.crc32(block, crc), size + len(block)
                        if size > stated:
                            raise Failure(f"ZIP: {name} inflates beyond its size")
                        yield block
            except zlib.error as exc:
                raise Failure(f"ZIP: {name} does not inflate: {exc}") from None
        if inflate and (not inflate.eof or inflate.unused_data or inflate.flush()):
            raise Failure(f"ZIP: {name}'s compressed data does not end where its size says")
        if (size, crc) != (stated, stated_crc):
            raise Failure(f"ZIP: {name} does not match its size and CRC-32")


def _zip_name(raw: bytes, flags: int) -> str:
    try:
        return safe_name(raw.decode("utf-8" if flags & 0x800 else "ascii"))
    except UnicodeDecodeError:
        raise Failure("ZIP: a member name is not valid text") from None


def _zip64(extra: bytes, values: list[int], name: str) -> list[int]:
    """Resolve fields stored as 0xFFFFFFFF from the ZIP64 extra, which must hold exactly those."""
    wanted = [i for i, value in enumerate(values) if value == MAX32]
    if not wanted:
        if extra:
            raise Failure(f"ZIP: {name} has unexpected extra fields")
        return values
    if len(extra) != 4 + 8 * len(wanted) or struct.unpack_from("<HH", extra) != (
        1,
        8 * len(wanted),
    ):
        raise Failure(f"ZIP: {name} has a malformed ZIP64 field")
    resolved = list(values)
    for n, i in enumerate(wanted):
        resolved[i] = struct.unpack_from("<Q", extra, 4 + 8 * n)[0]
    return resolved


def open_bundle(location: Path, store: Store) -> Zip | Directory:
    if location.is_dir():
        return Directory(location, store)
    if location.is_file():
        return Zip(location, store)
    raise Failure(f"{location}: no such file or directory")


def read_all(bundle: Zip | Directory, name: str) -> bytes:
    if name not in bundle.names:
        raise Failure(f"{name} is missing")
    return b"".join(bundle.chunks(name))


def text_of(bundle: Zip | Directory, name: str) -> str:
    try:
        return read_all(bundle, name).decode("utf-8")
    except UnicodeDecodeError:
        raise Failure(f"{name} is not UTF-8 text") from None


def digest(bundle: Zip | Directory, name: str, where: Any = None) -> tuple[int, str]:
    sha, size = hashlib.sha256(), 0
    for block in bundle.chunks(name, where):
        sha.update(block)
        size += len(block)
    return size, sha.hexdigest()


# --------------------------------------------------------------------------- the manifest


def lines(blocks: Iterator[bytes]) -> Iterator[str]:
    rest = b""
    for block in blocks:
        *complete, rest = (rest + block).split(b"\n")
        for line in complete:
            try:
                yield line.decode("ascii")
            except UnicodeDecodeError:
                raise Failure("manifest.json is not ASCII") from None
    if rest:
        raise Failure("manifest.json does not end with a newline")


class Manifest:
    """manifest.json read a line at a time: a header line, then its sections, one item a line."""

    def __init__(self, source: Iterator[str]) -> None:
        self.source = source
        first = next(source, "")
        if not (first.startswith("{") and first.endswith(",")):
            raise Failure("manifest.json does not start with its header line")
        self.header = as_dict(parse(first[:-1] + "}"), "the manifest header")

    def section(self, name: str) -> Iterator[dict[str, Any]]:
        if next(self.source, None) != f'"{name}":[':
            raise Failure(f"manifest.json: the {name!r} section is not where it belongs")
        closing = "]}" if name == SECTIONS[-1] else "],"
        more = None  # whether the previous item ended with a comma
        for line in self.source:
            if line == closing and more is not True:
                return
            if more is False:
                raise Failure(f"manifest.json: a comma is missing in {name!r}")
            more = line.endswith(",")
            yield as_dict(parse(line[:-1] if more else line), f"an item of {name!r}")
        raise Failure("manifest.json ends early")

    def end(self) -> None:
        if next(self.source, None) is not None:
            raise Failure("manifest.json has lines after its last section")


def parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise Failure("manifest.json is not well-formed JSON") from None


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Failure(f"{what} is not an object")
    return value


def field(item: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = item.get(key)
    if type(value) is not kind:  # exact: a JSON true is not the integer 1
        raise Failure(f"{what}: {key!r} is missing or not a {kind.__name__}")
    return value


# --------------------------------------------------------------------------- the checks


class Tally:
    """What the entries proved so far, and the message that the annotations after it annotate."""

    def __init__(self, redacted: bool = False, seen: Seqs | None = None) -> None:
        self.entries, self.messages, self.contents, self.withheld = 0, 0, 0, 0
        self.redacted = redacted  # only a redacted (subject access) export may withhold
        self.seen = Seqs(None, "") if seen is None else seen  # the entries met, on disk
        self.message, self.wamid = -1, b""

    def first_time(self, seq: int) -> bool:
        """Whether `seq` is met for the first time; it is met now."""
        return self.seen.add(seq)


def trusted_key(bundle: Zip | Directory, pinned: str | None) -> Key:
    shipped = Key(text_of(bundle, "verifier-key.txt"))
    if pinned is None:
        say(
            "WARNING: no --key given, so this check trusts verifier-key.txt from the bundle itself,"
            " and anyone can make a bundle that verifies with a key of their own. Compare it with"
            " the key the archive publishes (its portal's home page, `manage.py"
            f" export_public_key`) and pass that with --key:\n         {shipped.text}"
        )
        return shipped
    key = Key(pinned)
    if (key.name, key.public) != (shipped.name, shipped.public):
        raise Failure(f"this bundle is signed with {shipped.text}, not with the pinned key")
    say(f"ok   the bundle's key is the pinned key {key.text}")
    return key


def check_signature(bundle: Zip | Directory, key: Key) -> str:
    """manifest.sig signs manifest.json's SHA-256; return the export id it names."""
    _, sha = digest(bundle, MANIFEST)
    text = key.open(text_of(bundle, SIGNATURE), SIGNATURE)
    if len(text) != 3 or text[0] != SIGNATURE_TITLE:
        raise Failure("manifest.sig is not a manifest signature")
    if text[2] != sha:
        raise Failure(f"manifest.json has SHA-256 {sha}, but manifest.sig signs {text[2]}")
    say(f"ok   manifest.sig: {key.name} signed manifest.json (SHA-256 {sha})")
    return text[1]


def check_header(header: dict[str, Any], export_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise Failure("manifest.json is not a version 1 ClientWindow evidence bundle manifest")
    export = as_dict(header.get("export"), "the manifest's export")
    if field(export, "id", str, "the export") != export_id:
        raise Failure("manifest.sig names another export than manifest.json")
    as_dict(export.get("counts"), "the export's counts")
    return export, as_dict(header.get("checkpoint"), "the manifest's checkpoint")


def check_files(
    bundle: Zip | Directory, manifest: Manifest, export: dict[str, Any], store: Store
) -> Table:
    """The files the manifest lists, each [size, SHA-256]: exactly the bundle's, byte for byte."""
    listed = store.table()
    for item in manifest.section("files"):
        name = safe_name(field(item, "name", str, "a listed file"))
        stated = [field(item, "size", int, name), field(item, "sha256", str, name)]
        if name in (MANIFEST, SIGNATURE) or not listed.add(name, stated):
            raise Failure(f"{name} is listed twice")
    unlisted = bundle.names.first_not_in(listed, skip=(MANIFEST, SIGNATURE))
    if unlisted is not None:
        raise Failure(f"{unlisted} is in the bundle, but the manifest does not list it")
    missing = listed.first_not_in(bundle.names)
    if missing is not None:
        raise Failure(f"{missing} is listed in the manifest, but missing")
    for name, where, stated in bundle.names.joined(listed):  # in stored order: one pass
        if name not in (MANIFEST, SIGNATURE) and list(digest(bundle, name, where)) != stated:
            raise Failure(f"{name}: its size or SHA-256 differs from the manifest's")
    if field(export["counts"], "files", int, "the counts") != len(listed):
        raise Failure("the manifest's file count is wrong")
    say(f"ok   files: all {len(listed)} listed with their size and SHA-256, nothing else")
    return listed


def check_keys(bundle: Zip | Directory, key: Key, checkpoint: dict[str, Any]) -> None:
    stated = Key(field(checkpoint, "verifier_key", str, "the checkpoint"))
    if (stated.name, stated.public) != (key.name, key.public):
        raise Failure("the manifest names another verifier key")
    if pem_public_key(text_of(bundle, "public-key.pem")) != key.public:
        raise Failure("public-key.pem is not the verifier key")
    say("ok   public-key.pem and the manifest hold the verifier key")


def check_checkpoint(
    bundle: Zip | Directory, key: Key, stated: dict[str, Any]
) -> tuple[int, bytes]:
    note = text_of(bundle, "checkpoint.note")
    if note != field(stated, "note", str, "the checkpoint"):
        raise Failure("checkpoint.note differs from the note in the manifest")
    text = key.open(note, "checkpoint.note")
    if len(text) < 4 or text[0] != key.name or not text[3].startswith("time "):
        raise Failure(f"checkpoint.note is not a checkpoint of {key.name}")
    digits = text[1]
    if not (digits.isascii() and digits.isdigit()) or (digits[0] == "0" and digits != "0"):
        raise Failure("checkpoint.note's tree size is not a decimal number")
    size, root = int(digits), unbase64(text[2], "checkpoint.note's root")
    if len(root) != 32:
        raise Failure("checkpoint.note's root is not 32 bytes")
    if (size, root.hex()) != (stated.get("tree_size"), stated.get("root")):
        raise Failure("checkpoint.note's tree size or root differs from the manifest's")
    say(f"ok   checkpoint.note: {key.name} signed tree size {size}, root {root.hex()}")
    return size, root


def check_timestamp(bundle: Zip | Directory, stated: dict[str, Any], files: Table) -> None:
    """The token the manifest names is over this checkpoint.note; a bundle may have none."""
    facts = stated.get("timestamp")
    if facts is None:
        if TOKEN in files or TSA_CA in files:
            raise Failure(f"the bundle has {TOKEN} or {TSA_CA}, but the manifest names no token")
        say(
            "note no RFC 3161 timestamp token: no timestamp authority had answered for this"
            " checkpoint when the bundle was made; its time rests on the archive's signature"
        )
        return
    facts = as_dict(facts, "the manifest's timestamp")
    ca_file = facts.get("ca_file")
    if field(facts, "file", str, "the timestamp") != TOKEN or ca_file not in (TSA_CA, None):
        raise Failure(f"the manifest's timestamp names files other than {TOKEN} and {TSA_CA}")
    for name in (TOKEN, ca_file):
        if name is not None and name not in files:
            raise Failure(f"the manifest names {name}, but does not list it")
    if ca_file is None and TSA_CA in files:
        raise Failure(f"the bundle has {TSA_CA}, but the manifest's timestamp does not name it")
    imprint = hashlib.sha256(read_all(bundle, "checkpoint.note")).digest()
    if unhex(facts.get("imprint"), "the timestamp's imprint", 32) != imprint:
        raise Failure("the manifest's timestamp imprint is not the SHA-256 of checkpoint.note")
    hashed, gen_time = read_token(read_all(bundle, TOKEN))
    if hashed != imprint:
        raise Failure(f"{TOKEN} is not a token for checkpoint.note: its imprint differs")
    if gen_time != field(facts, "gen_time", str, "the timestamp"):
        raise Failure(f"{TOKEN}'s genTime {gen_time} differs from the manifest's")
    tsa = field(facts, "tsa_url", str, "the timestamp")
    say(
        f"ok   {TOKEN}: its imprint is the SHA-256 of checkpoint.note ({imprint.hex()});"
        f" genTime {gen_time}, from {tsa}"
    )
    if ca_file is None:
        say(f"note no {TSA_CA}: check {TOKEN} against the certificate {tsa} publishes")
    else:
        for fingerprint in fingerprints(read_all(bundle, TSA_CA)):
            say(f"     {TSA_CA}: certificate SHA-256 {fingerprint}")
    say(
        f"note the token's signature and the TSA's certificate chain are checked by OpenSSL,"
        f" not by verify.py: run `openssl ts -verify` as VERIFY.md shows, and compare {TSA_CA}"
        " with the certificate the TSA publishes"
    )


def read_attachments(
    manifest: Manifest, files: Table, export: dict[str, Any], store: Store
) -> Table:
    """The media files, by the seq of the ledger entry that seals each."""
    found, named = store.table(), store.table()
    for item in manifest.section("attachments"):
        name = field(item, "file", str, "an attachment")
        sha, seq = field(item, "sha256", str, name), field(item, "seq", int, name)
        field(item, "mime_type", str, name)
        unhex(sha, f"{name}'s SHA-256", 32)
        if name != f"attachments/{sha}" and not name.startswith(f"attachments/{sha}."):
            raise Failure(f"{name} is not named after its SHA-256")
        stated = [field(item, "size", int, name), sha]
        if files.get(name) != stated or not found.add(str(seq), item):
            raise Failure(f"{name} is not a listed file with this size and SHA-256")
        named.add(name, None)
    unnamed = files.first_not_in(named, prefix="attachments/")
    if unnamed is not None:
        raise Failure(f"{unnamed} is not in the manifest's attachments")
    if field(export["counts"], "attachments", int, "the counts") != len(found):
        raise Failure("the manifest's attachment count is wrong")
    return found


def check_entries(
    manifest: Manifest,
    size: int,
    root: bytes,
    media: Table,
    export: dict[str, Any],
    store: Store,
) -> Tally:
    scope = as_dict(export.get("scope"), "the export's scope")
    tally = Tally(redacted=scope.get("redact_others") is True, seen=store.seqs())
    for item in manifest.section("entries"):
        check_entry(item, size, root, tally, media)
    for _, left in media.items():
        raise Failure(f"{left['file']}: no ledger entry in the manifest seals it")
    if field(export["counts"], "messages", int, "the counts") != tally.messages:
        raise Failure("the manifest's message count is wrong")
    say(
        f"ok   entries: {tally.entries} ({tally.messages} messages): each envelope's leaf hash,"
        f" its inclusion proof to the root, and {tally.contents} disclosed contents against"
        " their commitments"
    )
    if tally.withheld:
        say(
            f"note {tally.withheld} contents withheld (GDPR redaction: they may name people other"
            " than the subject); their entries' envelopes, leaf hashes and proofs are checked,"
            " but those contents cannot be compared with anything"
        )
    return tally


def check_entry(item: dict[str, Any], size: int, root: bytes, tally: Tally, media: Table) -> None:
    seq = field(item, "seq", int, "an entry")
    where = f"entry {seq}"
    if not 0 <= seq < size:
        raise Failure(f"entry {seq} is not in a tree of size {size}")
    if not tally.first_time(seq):
        raise Failure(f"{where} appears twice")
    tally.entries += 1
    text = field(item, "envelope", str, where)
    try:
        envelope = text.encode("utf-8")
    except UnicodeEncodeError:
        raise Failure(f"{where}: the envelope is not valid text") from None
    leaf = hashlib.sha256(b"\x00" + envelope).digest()
    if unhex(item.get("leaf_hash"), f"{where}'s leaf hash", 32) != leaf:
        raise Failure(f"{where}: the leaf hash is not SHA-256(0x00 ‖ envelope)")
    body = as_dict(parse(text), f"{where}'s envelope")
    if (type(body.get("v")), body.get("v"), type(body.get("seq")), body.get("seq")) != (
        int,
        1,
        int,
        seq,
    ) or body.get("kind") != field(item, "kind", str, where):
        raise Failure(f"{where}: the envelope's version, seq or kind is not the entry's")
    proof = [unhex(node, f"{where}'s proof", 32) for node in field(item, "proof", list, where)]
    if root_from_proof(leaf, seq, size, proof) != root:
        raise Failure(f"{where}: the inclusion proof does not lead to the checkpoint's root")
    disclosed = check_contents(field(item, "contents", dict, where), body, where, tally)
    tally.contents += len(disclosed)
    check_role(item, seq, body, disclosed, tally, media)


def check_contents(
    contents: dict[str, Any], body: dict[str, Any], where: str, tally: Tally
) -> dict[str, bytes]:
    """Each disclosed content against sha256("clientwindow:" ‖ name ‖ 0x00 ‖ salt ‖ content);
    a withheld one (a string) only in a redacted export, and only one the envelope commits to."""
    disclosed: dict[str, bytes] = {}
    for name, value in contents.items():
        if isinstance(value, str) and value.startswith(WITHHELD):
            if not tally.redacted:
                raise Failure(f"{where}: {name!r} is withheld, but the export is not redacted")
            if not isinstance(body.get("commit." + name), str):
                raise Failure(f"{where}: {name!r} is withheld, but the envelope commits to none")
            tally.withheld += 1
            continue
        value = as_dict(value, f"{where}'s content {name!r}")
        salt = unhex(value.get("salt"), f"{where}'s salt of {name!r}", 32)
        content = unbase64(field(value, "content", str, where), f"{where}'s {name!r}")
        if not name.isascii():
            raise Failure(f"{where}: a content name is not ASCII")
        tag = b"clientwindow:" + name.encode("ascii") + b"\x00"
        if hashlib.sha256(tag + salt + content).hexdigest() != body.get("commit." + name):
            raise Failure(f"{where}: the disclosed {name!r} does not match its commitment")
        disclosed[name] = content
    return disclosed


def check_role(
    item: dict[str, Any],
    seq: int,
    body: dict[str, Any],
    disclosed: dict[str, bytes],
    tally: Tally,
    media: Table,
) -> None:
    """An annotation follows its message; a status, attachment or import is that message's."""
    role, where = item.get("role"), f"entry {seq}"
    if role == "message":
        if item.get("message_seq") != seq:
            raise Failure(f"{where}: a message that names another message")
        tally.message, tally.wamid = seq, disclosed.get("wamid", b"")
        tally.messages += 1
    elif role in ANNOTATIONS:
        if item.get("message_seq") != tally.message or tally.message < 0:
            raise Failure(f"{where}: a {role} that does not follow its message")
        if role == "status" and tally.wamid and disclosed.get("wamid", tally.wamid) != tally.wamid:
            raise Failure(f"{where}: the status of another message")
        if role == "attachment" and body.get("message_seq") != tally.message:
            raise Failure(f"{where}: the attachment record of another message")
        if role == "import" and (
            body.get("kind") != "message.imported" or body.get("same_as") != tally.message
        ):
            raise Failure(f"{where}: not a phone export's line of this message")
    elif role == "media":
        stated = media.pop(str(seq))
        if stated is None or "message_seq" in item:
            raise Failure(f"{where}: a media file the manifest's attachments do not list")
        sealed = disclosed.get("sha256")
        if body.get("kind") != "media.file" or sealed != bytes.fromhex(stated["sha256"]):
            raise Failure(f"{stated['file']}: {where} does not disclose that it seals this SHA-256")
        if (body.get("size"), body.get("mime_type")) != (stated["size"], stated["mime_type"]):
            raise Failure(f"{stated['file']}: {where} seals another size or type")
    else:
        raise Failure(f"{where}: unknown role {role!r}")


def check_self(files: Table) -> None:
    """Whether the verify.py running is the bundle's own copy (a warning only: an auditor may
    well run a copy of their own, which is the better practice)."""
    own = Path(__file__).read_bytes()
    if files.get("verify.py") == [len(own), hashlib.sha256(own).hexdigest()]:
        say("ok   this verify.py is the copy the manifest lists")
    else:
        say("note this verify.py is not the bundle's copy; its result is as good as your copy")


def verify(location: Path, pinned: str | None) -> None:
    with Store() as store:
        if store.in_memory:
            say(f"note {store.in_memory}: the index of files and entries is kept in memory")
        bundle = open_bundle(location, store)
        say(f"ok   {bundle.description}")
        for name in (MANIFEST, SIGNATURE):
            if name not in bundle.names:
                raise Failure(f"{name} is missing")
        key = trusted_key(bundle, pinned)
        manifest_id = check_signature(bundle, key)
        manifest = Manifest(lines(bundle.chunks(MANIFEST)))
        export, checkpoint = check_header(manifest.header, manifest_id)
        files = check_files(bundle, manifest, export, store)
        check_keys(bundle, key, checkpoint)
        size, root = check_checkpoint(bundle, key, checkpoint)
        check_timestamp(bundle, checkpoint, files)
        media = read_attachments(manifest, files, export, store)
        check_entries(manifest, size, root, media, export, store)
        manifest.end()
        say(f"ok   attachments: {export['counts']['attachments']} files sealed by their entries")
        check_self(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a ClientWindow evidence bundle offline.")
    parser.add_argument(
        "bundle", type=Path, help="the bundle's ZIP, or a directory it was unpacked in"
    )
    parser.add_argument(
        "--key", help="the verifier key the archive publishes (or a file holding it)"
    )
    args = parser.parse_args(argv)
    pinned: str | None = args.key
    if pinned is not None and Path(pinned).is_file():
        pinned = Path(pinned).read_text(encoding="utf-8")
    say("ClientWindow evidence bundle verifier")
    try:
        verify(args.bundle, pinned)
    except Failure as failure:
        say(f"FAIL: {failure}")
        return 1
    except Exception as exc:  # a malformed bundle can break any parser: a failure, not a crash
        say(f"FAIL: the bundle is malformed ({type(exc).__name__}: {exc})")
        return 1
    say("VERIFIED: every check holds." + ("" if pinned else " (The key was not pinned.)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
