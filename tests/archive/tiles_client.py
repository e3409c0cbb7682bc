"""An independent C2SP tlog-tiles client, written from the specs alone (tlog-tiles, tlog-checkpoint,
signed-note) and importing nothing from the `archive` package.

It does what a monitor does with `<prefix>/checkpoint` and `<prefix>/tile/<L>/<N>[.p/<W>]`:

- `open_checkpoint` checks the note's Ed25519 signature against a verifier key
  (`<name>+<hex key id>+<base64(0x01 ‖ key)>`) and the origin, and reads size and root;
- `TileTree` reads the hashes of a tree of a verified size from tiles only: partial tiles of the
  widths that size gives, and full tiles, each checked against the hash one tile level up
  (as Go's tlog.TileHashReader does), so every hash it hands out is bound to the root;
- `follow` recomputes the root of the latest checkpoint; `check_consistency` recomputes an older
  checkpoint's root from the newer tree's tiles, which proves the old tree is its prefix.

`fetch(path)` returns the body for a path below the prefix, or raises; the tests pass one built on
Django's test client, a live monitor one built on HTTP.
"""

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

Fetch = Callable[[str], bytes]
HEIGHT = 8
WIDTH = 256
HASH = 32
EM_DASH = "\u2014"


class ClientError(Exception):
    """What the log served does not verify, or cannot be used."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01", left, right)


def perfect_root(hashes: list[bytes]) -> bytes:
    """The Merkle tree hash over a power-of-two number of nodes, pairwise up."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


# --------------------------------------------------------------------------- signed note


def open_checkpoint(note: str, verifier_key: str, origin: str) -> Checkpoint:
    """signed-note: text, a blank line, `— <name> <base64(key id ‖ sig)>` lines; tlog-checkpoint
    text: origin, size, base64 root, then extension lines."""
    name, hex_id, encoded = verifier_key.split("+", 2)
    raw = base64.b64decode(encoded, validate=True)
    if len(raw) != 33 or raw[0] != 1:
        raise ClientError("the verifier key is not an Ed25519 key")
    key_id = sha256(name.encode(), b"\n", raw)[:4]
    if key_id.hex() != hex_id:
        raise ClientError("the verifier key's id does not match its key")
    text, separator, signatures = note.rpartition("\n\n")
    if not separator or not signatures.endswith("\n"):
        raise ClientError("the note has no signature block")
    text += "\n"
    signed = False
    for line in signatures[:-1].split("\n"):
        if not line.startswith(EM_DASH + " "):
            raise ClientError(f"bad signature line {line!r}")
        signer, _, blob_text = line[2:].partition(" ")
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except binascii.Error:
            raise ClientError(f"signature by {signer!r} is not base64") from None
        if signer == name and blob[:4] == key_id and len(blob) == 68:
            try:
                Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[4:], text.encode())
            except InvalidSignature:
                raise ClientError("the log's signature does not verify") from None
            signed = True
    if not signed:
        raise ClientError("no signature by the log's key")
    lines = text.split("\n")
    if lines[0] != origin:
        raise ClientError(f"origin {lines[0]!r}, expected {origin!r}")
    if not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
        raise ClientError(f"bad tree size {lines[1]!r}")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        raise ClientError("the root is not base64") from None
    if len(root) != HASH:
        raise ClientError("the root is not 32 bytes")
    return Checkpoint(lines[0], int(lines[1]), root)


# --------------------------------------------------------------------------- tiles


def tile_path(level: int, index: int, width: int) -> str:
    """tile/<L>/<N>[.p/<W>], N in zero-padded three-digit groups, all but the last after an x."""
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.insert(0, f"x{index % 1000:03d}")
        index //= 1000
    suffix = "" if width == WIDTH else f".p/{width}"
    return f"tile/{level}/{'/'.join(groups)}{suffix}"


class TileTree:
    """The hashes of the tree of `size` leaves, read from the log's tiles."""

    def __init__(self, fetch: Fetch, size: int) -> None:
        self.fetch = fetch
        self.size = size
        self.tiles: dict[tuple[int, int], list[bytes]] = {}

    def count(self, level: int) -> int:
        """How many hashes level `level` of the tiles holds for this tree size."""
        return self.size // WIDTH**level

    def tile(self, level: int, index: int) -> list[bytes]:
        if (level, index) not in self.tiles:
            width = min(WIDTH, self.count(level) - index * WIDTH)
            if width <= 0:
                raise ClientError(f"a tree of size {self.size} has no tile {level}/{index}")
            path = tile_path(level, index, width)
            body = self.fetch(path)
            if len(body) != width * HASH:
                raise ClientError(f"{path} is {len(body)} bytes, expected {width * HASH}")
            hashes = [body[i : i + HASH] for i in range(0, len(body), HASH)]
            # A full tile is one hash of the level above: check it there, up to a partial tile,
            # whose hashes the root covers directly.
            if width == WIDTH and perfect_root(hashes) != self.hash(level + 1, index):
                raise ClientError(f"{path} does not hash to its entry one level up")
            self.tiles[level, index] = hashes
        return self.tiles[level, index]

    def hash(self, level: int, index: int) -> bytes:
        return self.tile(level, index // WIDTH)[index % WIDTH]

    def node(self, height: int, index: int) -> bytes:
        """The hash of the perfect subtree of 2**height leaves starting at index * 2**height."""
        level, rest = divmod(height, HEIGHT)
        first = index << rest
        return perfect_root([self.hash(level, j) for j in range(first, first + (1 << rest))])

    def root(self, size: int | None = None) -> bytes:
        """RFC 6962 root of the first `size` leaves: its perfect subtrees, folded right to left."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ClientError(f"size {size} is beyond the tree's {self.size}")
        nodes, start = [], 0
        for height in reversed(range(size.bit_length())):
            if size >> height & 1:
                nodes.append(self.node(height, start >> height))
                start += 1 << height
        if not nodes:
            return sha256(b"")
        root = nodes.pop()
        while nodes:
            root = node_hash(nodes.pop(), root)
        return root


def follow(fetch: Fetch, verifier_key: str, origin: str) -> Checkpoint:
    """Fetch the latest checkpoint, verify it, and check that its tiles give its root."""
    checkpoint = open_checkpoint(fetch("checkpoint").decode(), verifier_key, origin)
    if TileTree(fetch, checkpoint.size).root() != checkpoint.root:
        raise ClientError(f"the tiles of tree size {checkpoint.size} do not give its root")
    return checkpoint


def check_consistency(fetch: Fetch, old: Checkpoint, new: Checkpoint) -> None:
    """The tree of `old` is a prefix of that of `new`: both roots from the new tree's tiles."""
    if old.size > new.size:
        raise ClientError(f"the old size {old.size} is larger than the new {new.size}")
    tree = TileTree(fetch, new.size)
    if tree.root() != new.root:
        raise ClientError(f"the tiles of tree size {new.size} do not give its root")
    if tree.root(old.size) != old.root:
        raise ClientError(f"tree size {new.size} does not extend tree size {old.size}")
