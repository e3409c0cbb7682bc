"""Ed25519 signed notes (C2SP signed-note) for ledger checkpoints, and the signing key.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
`— <key name> <base64(key id ‖ signature)>`. The key id is the first 4 bytes of
sha256(key name ‖ "\n" ‖ 0x01 ‖ public key). Existing signed-note tooling (Go's
golang.org/x/mod/sumdb/note, transparency-dev) verifies these notes with our verifier key
`<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
"""

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519_ALG = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line


class NoteError(ValueError):
    """A note that is malformed or whose signature does not verify."""


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @property
    def verifier_key(self) -> str:
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        encoded = base64.b64encode(ED25519_ALG + raw).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: str, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, text.encode())
        except InvalidSignature:
            return False
        return True


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + ED25519_ALG + raw).digest()[:4]


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")


def verifier_for(name: str, public_key: Ed25519PublicKey) -> Verifier:
    _check_key_name(name)
    return Verifier(name, key_id(name, public_key), public_key)


def parse_verifier_key(text: str) -> Verifier:
    """Parse `<name>+<hex id>+<base64(0x01 ‖ key)>`, checking that the id matches the key."""
    try:
        name, hex_id, encoded = text.strip().split("+", 2)  # base64 may contain "+"
        blob = base64.b64decode(encoded, validate=True)
        expected_id = bytes.fromhex(hex_id)
    except (ValueError, binascii.Error) as exc:
        raise NoteError(f"malformed verifier key: {exc}") from None
    if len(blob) != 33 or blob[:1] != ED25519_ALG:
        raise NoteError("verifier key is not an Ed25519 key")
    verifier = verifier_for(name, Ed25519PublicKey.from_public_bytes(blob[1:]))
    if verifier.key_id != expected_id:
        raise NoteError("verifier key id does not match its key")
    return verifier


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Return the signed note: the text, a blank line and one signature line."""
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("note text must end with a newline and contain no blank line")
    verifier = verifier_for(name, private_key.public_key())
    signature = private_key.sign(text.encode())
    encoded = base64.b64encode(verifier.key_id + signature).decode()
    return f"{text}\n{SIGNATURE_PREFIX}{name} {encoded}\n"


def open_note(note: str, verifiers: list[Verifier]) -> str:
    """Return the note's text if a signature by one of `verifiers` verifies; else NoteError."""
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("note has no signature block")
    text += "\n"
    for line in signatures[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"malformed signature line {line!r}")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError("signature is not base64") from None
        for verifier in verifiers:
            if (verifier.name, verifier.key_id) == (name, blob[:4]) and len(blob) == 68:
                if verifier.verify(text, blob[4:]):
                    return text
                raise NoteError(f"signature by {name} does not verify")
    raise NoteError("no signature by a known key")


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise NoteError(f"{path} does not hold an Ed25519 private key")
    return key


def create_private_key(path: Path) -> Ed25519PrivateKey:
    """Write a new key to `path` (mode 0600, never overwriting an existing file)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
