"""Witness cosignatures of checkpoints (C2SP tlog-witness and tlog-cosignature).

A witness keeps, per log, the newest checkpoint it has verified. We submit each new checkpoint
with a consistency proof from the size it last cosigned; it checks the proof against its own
record and returns a timestamped cosignature. A database rolled back or forked can then no
longer show a checkpoint the witness would not have cosigned, and cannot present itself to the
witness as anything but a smaller (or a different) tree — which the witness refuses.

Cosignatures are Ed25519 (vkey type 0x04; the signed message is `cosignature/v1\\ntime <POSIX
seconds>\\n` followed by the checkpoint's note body) or ML-DSA-44 (type 0x06; the signed message
is the binary `subtree/v1` cosigned_message over origin, 0, tree size and root, FIPS 204 with
an empty context). A signature line carries key id ‖ u64 big-endian timestamp ‖ signature.
Only keys in WITNESS_KEYS (vkeys `<name>+<hex key id>+<base64(type ‖ key)>`) are trusted;
other lines a witness returns are ignored.
"""

import base64
import binascii
import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PublicKey
from django.conf import settings
from django.core.checks import Error, register
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Max
from django.utils import timezone

from archive.anchoring import AnchorFailure
from archive.chain_check import Problem
from archive.checkpoints import parse_checkpoint_body
from archive.models import Checkpoint, Cosignature
from archive.proofs import ProofUnavailable, ledger_consistency_proof
from archive.signing import SIGNATURE_PREFIX

if TYPE_CHECKING:
    from archive.verify import CheckpointRow, Report

logger = logging.getLogger(__name__)

ED25519 = 0x04  # vkey type of an Ed25519 cosignature/v1 key (tlog-cosignature)
MLDSA44 = 0x06  # vkey type of an ML-DSA-44 subtree/v1 key
KEY_SIZES = {ED25519: 32, MLDSA44: 1312}
SIGNATURE_SIZES = {ED25519: 64, MLDSA44: 2420}
SIZE_CONTENT_TYPE = "text/x.tlog.size"  # a 409's body: the size the witness last cosigned
# A witness's clock may run ahead of ours by this much before its cosignature is refused.
FUTURE_SKEW = timedelta(minutes=5)


class WitnessKeyError(ValueError):
    """A WITNESS_KEYS entry that is not an Ed25519 or ML-DSA-44 cosignature vkey."""


@dataclass(frozen=True)
class ParsedCosignature:
    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    @property
    def signed_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)


@dataclass(frozen=True)
class WitnessKey:
    name: str
    key_id: bytes
    kind: int  # ED25519 or MLDSA44
    public_key: Ed25519PublicKey | MLDSA44PublicKey

    def verifies(self, body: str, cosignature: ParsedCosignature) -> bool:
        """Whether `cosignature` is this key's signature over the checkpoint `body`."""
        if len(cosignature.signature) != SIGNATURE_SIZES[self.kind]:
            return False
        try:
            if self.kind == ED25519:
                message = cosigned_message(body, cosignature.timestamp)
            else:
                message = subtree_message(self.name, body, cosignature.timestamp)
            self.public_key.verify(cosignature.signature, message)
        except (InvalidSignature, ValueError):  # ValueError: a body that is not a checkpoint
            return False
        return True


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What an Ed25519 cosigner signs: a header, its timestamp line, then the note body."""
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def subtree_message(name: str, body: str, timestamp: int) -> bytes:
    """What an ML-DSA-44 cosigner signs for a whole checkpoint: its cosigned_message struct."""
    origin, size, root = parse_checkpoint_body(body)
    return b"".join(
        [
            b"subtree/v1\n\x00",
            _short(name.encode()),
            timestamp.to_bytes(8, "big"),
            _short(origin.encode()),
            bytes(8),  # start: a checkpoint is the subtree [0, size)
            size.to_bytes(8, "big"),
            root,
        ]
    )


def _short(value: bytes) -> bytes:
    if not 0 < len(value) < 256:
        raise ValueError("a cosigner name or origin must be 1 to 255 bytes")
    return bytes([len(value)]) + value


def witness_key_id(name: str, kind: int, raw_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + raw_key).digest()[:4]


def parse_witness_key(text: str) -> WitnessKey:
    """Parse a vkey `<name>+<hex key id>+<base64(type ‖ key)>`, type 0x04 (Ed25519, 32 bytes)
    or 0x06 (ML-DSA-44, 1312 bytes), checking that the key id matches."""
    name = text.strip().split("+", 1)[0]
    try:
        name, hex_id, encoded = text.strip().split("+", 2)  # base64 may contain "+"
        blob = base64.b64decode(encoded, validate=True)
        expected_id = bytes.fromhex(hex_id)
    except (ValueError, binascii.Error):
        raise WitnessKeyError(f"{name[:80]!r} is not a vkey <name>+<key id>+<key>") from None
    if not name or any(ch.isspace() for ch in name):
        raise WitnessKeyError(f"the key name {name[:80]!r} is empty or has spaces")
    kind, raw = (blob[0], blob[1:]) if blob else (-1, b"")
    if KEY_SIZES.get(kind) != len(raw):
        raise WitnessKeyError(
            f"{name}: not an Ed25519 (type 0x04) or ML-DSA-44 (type 0x06) cosignature key"
        )
    if witness_key_id(name, kind, raw) != expected_id:
        raise WitnessKeyError(f"{name}: the key id does not match the key")
    if kind == ED25519:
        return WitnessKey(name, expected_id, kind, Ed25519PublicKey.from_public_bytes(raw))
    try:
        return WitnessKey(name, expected_id, kind, MLDSA44PublicKey.from_public_bytes(raw))
    except UnsupportedAlgorithm:  # cryptography built against an OpenSSL before 3.5
        raise WitnessKeyError(f"{name}: this cryptography build cannot verify ML-DSA-44") from None


def witness_keys() -> list[WitnessKey]:
    """The configured witness keys; WitnessKeyError names the first malformed one."""
    return [parse_witness_key(text) for text in settings.WITNESS_KEYS]


def parse_cosignature(line: str) -> ParsedCosignature:
    """One signature line `— <name> <base64(key id ‖ timestamp ‖ signature)>` (no newline)."""
    if not line.startswith(SIGNATURE_PREFIX):
        raise ValueError("not a signature line")
    name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError(f"signature by {name} is not base64") from None
    if len(blob) - 12 not in SIGNATURE_SIZES.values():
        raise ValueError(f"signature by {name} is not a timestamped cosignature")
    return ParsedCosignature(name, blob[:4], int.from_bytes(blob[4:12], "big"), blob[12:])


def note_body(note: str) -> str:
    """The signed text of a note: everything before the blank line, with its final newline."""
    return note.partition("\n\n")[0] + "\n"


# --- asking a witness ----------------------------------------------------------------------


def cosign(checkpoint: Checkpoint, target: str) -> None:
    """Submit `checkpoint` to the witness at submission prefix `target` and keep its
    cosignatures; AnchorFailure (retried later) when it refuses or cannot be reached."""
    keys = _keys_or_fail()
    old = _last_cosigned_size(keys, checkpoint.tree_size)
    response = _add_checkpoint(target, checkpoint, old)
    if response.status_code == 409:
        old = _size_it_has_seen(target, response, checkpoint.tree_size)
        response = _add_checkpoint(target, checkpoint, old)
    if response.status_code != 200:
        raise AnchorFailure(f"witness {target} refused the checkpoint: {_status(response)}")
    _keep(checkpoint, response.text, keys, target)


def _keys_or_fail() -> list[WitnessKey]:
    try:
        keys = witness_keys()
    except WitnessKeyError as exc:
        raise AnchorFailure(f"WITNESS_KEYS: {exc}") from None
    if not keys:
        raise AnchorFailure("WITNESS_KEYS is empty: no cosignature could be checked")
    return keys


def _last_cosigned_size(keys: list[WitnessKey], tree_size: int) -> int:
    """Our newest cosigned tree size (0 if none). Cosignatures do not record which URL gave
    them, so this is the newest by any configured witness: a witness that has cosigned
    another size says so with a 409, and the submission is repeated once with its size."""
    names = [key.name for key in keys]
    newest = Cosignature.objects.filter(witness__in=names, checkpoint_id__lte=tree_size)
    return int(newest.aggregate(size=Max("checkpoint_id"))["size"] or 0)


def _add_checkpoint(target: str, checkpoint: Checkpoint, old: int) -> httpx.Response:
    try:
        proof = ledger_consistency_proof(old, checkpoint.tree_size) if old else []
    except ProofUnavailable as exc:
        raise AnchorFailure(f"no consistency proof from size {old}: {exc}") from None
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    body = "\n".join(lines) + "\n\n" + checkpoint.note
    url = target.rstrip("/") + "/add-checkpoint"
    try:
        return _client().post(
            url,
            content=body.encode(),
            headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=settings.WITNESS_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise AnchorFailure(f"witness {target} could not be reached: {_describe(exc)}") from None


_clients: dict[int, httpx.Client] = {}


def _client() -> httpx.Client:
    """One keep-alive client per process (workers fork, and must not share sockets)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = httpx.Client(headers={"User-Agent": "ClientWindow witness client"})
    return _clients[pid]


def _size_it_has_seen(target: str, response: httpx.Response, ours: int) -> int:
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    text = response.text.strip()
    if media_type != SIZE_CONTENT_TYPE or not text.isdigit():
        raise AnchorFailure(f"witness {target} refused the checkpoint: {_status(response)}")
    size = int(text)
    if size > ours:
        # Our database shows a smaller tree than one we once showed the witness: rolled back,
        # restored from an old backup, or our signing key signed a tree elsewhere.
        logger.error("witness %s has cosigned %d entries, our checkpoint %d", target, size, ours)
        raise AnchorFailure(f"witness has seen a larger tree than ours: {size}")
    return size


def _keep(checkpoint: Checkpoint, reply: str, keys: list[WitnessKey], target: str) -> None:
    body = note_body(checkpoint.note)
    found, refused = _good_cosignatures(reply, body, keys)
    if not found:
        why = "; ".join(refused) or "it returned none by a key in WITNESS_KEYS"
        raise AnchorFailure(f"witness {target} gave no usable cosignature: {why}")
    now = timezone.now()
    kept = checkpoint.cosignatures.values_list("witness", "key_id")
    have = {(name, bytes(key_id)) for name, key_id in kept}
    for line, parsed in found:
        if (parsed.name, parsed.key_id) in have:
            continue  # a repeated duty: the first cosignature is the one kept
        Cosignature.objects.create(
            checkpoint=checkpoint,
            witness=parsed.name,
            key_id=parsed.key_id,
            line=line + "\n",
            signed_at=parsed.signed_at,
            received_at=now,
        )
    for reason in refused:
        logger.warning("witness %s: %s", target, reason)


def _good_cosignatures(
    reply: str, body: str, keys: list[WitnessKey]
) -> tuple[list[tuple[str, ParsedCosignature]], list[str]]:
    """The reply's lines by a configured key that verify over `body`, and why others did not."""
    found: list[tuple[str, ParsedCosignature]] = []
    refused: list[str] = []
    latest = (timezone.now() + FUTURE_SKEW).timestamp()
    for line in reply.splitlines():
        try:
            parsed = parse_cosignature(line)
        except ValueError:
            continue  # not ours to judge: an unknown key's format, or noise
        key = _key_for(parsed, keys)
        if key is None:
            continue
        if not 0 < parsed.timestamp <= latest:
            refused.append(f"cosignature by {key.name} is dated {parsed.timestamp}, not now")
        elif not key.verifies(body, parsed):
            refused.append(f"cosignature by {key.name} does not verify")
        else:
            found.append((line, parsed))
    return found, refused


def _key_for(parsed: ParsedCosignature, keys: Iterable[WitnessKey]) -> WitnessKey | None:
    return next((k for k in keys if (k.name, k.key_id) == (parsed.name, parsed.key_id)), None)


def _status(response: httpx.Response) -> str:
    first = response.text.strip().split("\n", 1)[0][:200]
    return f"HTTP {response.status_code}" + (f" {first}" if first else "")


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {settings.WITNESS_TIMEOUT} s"
    return f"{type(exc).__name__} {exc}".strip()


# --- reading what we kept ------------------------------------------------------------------


def cosigned_note(checkpoint: Checkpoint) -> str:
    """The checkpoint's signed note with every kept cosignature line appended: still a valid
    signed note, which a client trusting the witness keys can verify in one call."""
    lines = checkpoint.cosignatures.order_by("witness", "key_id").values_list("line", flat=True)
    return checkpoint.note + "".join(lines)


def verify_cosignatures(
    report: "Report", stored: "list[CheckpointRow]", *, using: str = DEFAULT_DB_ALIAS
) -> None:
    """Check every kept cosignature over its checkpoint's note under WITNESS_KEYS, and note
    per checkpoint who cosigned it (report.anchors[size]["cosignatures"])."""
    try:
        keys = witness_keys()
    except WitnessKeyError as exc:
        report.add(Problem(f"cosignatures cannot be checked: WITNESS_KEYS: {exc}"))
        keys = []
    notes = {row.tree_size: row.note for row in stored}
    kept = Cosignature.objects.using(using).filter(checkpoint_id__in=list(notes))
    signers: dict[int, list[str]] = {size: [] for size in notes}
    for cosignature in kept.order_by("checkpoint_id", "witness"):
        size = cosignature.checkpoint_id
        problem = _cosignature_problem(cosignature, notes[size], keys)
        if problem:
            report.add(Problem(problem, checkpoint=size))
        else:
            signers[size].append(f"{cosignature.witness} at {_utc(cosignature.signed_at)}")
    for size, names in signers.items():
        report.anchors.setdefault(size, {})["cosignatures"] = "; ".join(names) or "none"


def _cosignature_problem(cosignature: Cosignature, note: str, keys: list[WitnessKey]) -> str:
    name = cosignature.witness
    try:
        parsed = parse_cosignature(cosignature.line.rstrip("\n"))
    except ValueError as exc:
        return f"cosignature by {name} is malformed: {exc}"
    key = _key_for(parsed, keys)
    if key is None:
        return f"cosignature by {parsed.name} cannot be checked: no WITNESS_KEYS entry"
    stated = (name, bytes(cosignature.key_id), cosignature.signed_at.timestamp())
    if stated != (parsed.name, parsed.key_id, parsed.timestamp):
        return f"cosignature by {name}: its row differs from its signature line"
    if not key.verifies(note_body(note), parsed):
        return f"cosignature by {name} does not verify"
    return ""


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- configuration -------------------------------------------------------------------------


@register("archive")
def check_witness_keys(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Witnesses without usable keys: every cosignature they return would be thrown away."""
    if not settings.WITNESS_URLS:
        return []
    try:
        problem = "" if witness_keys() else "WITNESS_KEYS is empty"
    except WitnessKeyError as exc:
        problem = f"WITNESS_KEYS has a malformed entry: {exc}"
    if not problem:
        return []
    return [
        Error(
            f"WITNESS_URLS is set but {problem}, so no cosignature can be checked or kept.",
            hint="List each witness's Ed25519 cosignature vkey "
            "(<name>+<hex key id>+<base64(0x04 ‖ key)>) in WITNESS_KEYS.",
            id="archive.E006",
        )
    ]
