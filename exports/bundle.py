"""The evidence bundle: one ZIP that an outsider verifies offline, without trusting us.

It holds every other format (each writer of exports/formats.py, the single-file ones in a
folder of their own), each stored media file in scope once (`attachments/<sha256>.<ext>`), the
checkpoint note with the keys that check it, the checkpoint's RFC 3161 timestamp token and the
TSA's certificates when it has one (`checkpoint.tst`, `tsa-ca.pem`), VERIFY.md and verify.py
(exports/verifier/), SHA256SUMS for `sha256sum -c`, and `manifest.json`: the export, the
checkpoint (with the token's genTime, TSA and imprint, or `"timestamp":null`), the size and
SHA-256 of every other file, the media files with the ledger entries that seal them, and every
ledger entry in scope with its envelope, disclosed contents and inclusion proof
(exports/evidence.py; a subject access export withholds the contents that may name others).
`manifest.sig` signs the manifest's SHA-256 with the ledger's key as a signed note, so every
byte of the manifest is authenticated, not only what the ledger proves.

manifest.json is written as it is read, one item per line, so memory stays flat at any size:
a header line, then the sections "files", "attachments" and "entries", each opened by its own
line and closed by `],` (the last by `]}`). It is ordinary JSON; verify.py reads it line by line.
The same scope against the same checkpoint gives the same bytes, apart from the export's id and
time and the signature over a manifest that holds them.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db.models import QuerySet

from archive import checkpoints, signing
from archive.envelope import rfc3339
from archive.models import CheckpointTimestamp
from archive.objectstore import Corrupt
from messaging.media import open_media
from messaging.models import MediaFile

from . import evidence, formats
from .eml import EXTENSIONS
from .source import CHUNK, Source
from .target import FileRecord, Target

FORMAT = "clientwindow-evidence-bundle"
VERSION = 1
MANIFEST, SIGNATURE, SUMS = "manifest.json", "manifest.sig", "SHA256SUMS"
TOKEN, TSA_CA = "checkpoint.tst", "tsa-ca.pem"
SIGNATURE_TITLE = "clientwindow export manifest"
VERIFIER = Path(__file__).resolve().parent / "verifier"
_FLUSH = 1 << 20  # manifest bytes gathered before a write to the ZIP stream
_COPY = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(RuntimeError):
    """The bundle cannot be made as asked (a wrong key, media that no longer matches)."""


@dataclass(frozen=True)
class Stamp:
    """The checkpoint's RFC 3161 token as the bundle carries it: the DER token, the PEM
    certificates its signer must chain to (None when TSA_CA_FILE is not set), and the facts
    the manifest states."""

    token: bytes
    ca: bytes | None
    facts: dict[str, Any]


def write(source: Source, target: Target, prefix: str = "") -> None:
    """Write the whole bundle under `prefix`; manifest.json and manifest.sig come last."""
    _check_checkpoint(source)
    if "\n" in source.export_id or not source.export_id:
        raise BundleError("an export id is one line of text")
    stamp = timestamp(source)  # read once: a token arriving meanwhile must not split the two
    start = len(target.files)
    for fmt in formats.FORMATS:
        if fmt != "bundle":
            folder = f"{fmt}/" if formats.single_file(fmt) else ""  # eml/rsmf name their folders
            formats.writer(fmt)(source, target, prefix + folder)
    write_attachments(source, target, prefix)
    _write_fixed_files(source, target, prefix, stamp)
    _write_sums(target, target.files[start:], prefix)
    manifest = write_manifest(source, target, target.files[start:], prefix, stamp)
    body = f"{SIGNATURE_TITLE}\n{source.export_id}\n{manifest.sha256}\n"
    note = signing.sign_note(body, checkpoints.key_name(), checkpoints.signing_key())
    with target.open(prefix + SIGNATURE) as out:
        out.write(note.encode())


def _check_checkpoint(source: Source) -> None:
    """The note must be signed by the key the bundle ships, and state the row's size and root."""
    try:
        text = signing.open_note(source.checkpoint.note, [checkpoints.current_verifier()])
        _, size, root = checkpoints.parse_checkpoint_body(text)
    except ValueError as exc:  # NoteError is a ValueError
        raise BundleError(
            f"checkpoint {source.tree_size} does not verify with the current ledger key ({exc});"
            " sign a new checkpoint (`manage.py checkpoint`) and export again"
        ) from None
    if (size, root) != (source.tree_size, bytes(source.checkpoint.root)):
        raise BundleError(f"checkpoint {source.tree_size}'s note does not state its size and root")


def timestamp(source: Source) -> Stamp | None:
    """The checkpoint's earliest RFC 3161 token (archive/timestamps.py verified it on receipt),
    with the certificates of TSA_CA_FILE; None when the checkpoint has none yet."""
    kept: CheckpointTimestamp | None = source.checkpoint.timestamps.order_by(
        "gen_time", "received_at"
    ).first()
    if kept is None:
        return None
    ca = None
    if settings.TSA_CA_FILE:
        try:
            ca = Path(settings.TSA_CA_FILE).read_bytes()
        except OSError as exc:
            raise BundleError(
                f"TSA_CA_FILE {settings.TSA_CA_FILE} cannot be read ({exc.strerror})"
            ) from None
    facts = {
        "file": TOKEN,
        "ca_file": TSA_CA if ca is not None else None,
        "gen_time": rfc3339(kept.gen_time),
        "tsa_url": _public_url(kept.tsa_url),
        "imprint": hashlib.sha256(source.checkpoint.note.encode()).hexdigest(),
    }
    return Stamp(bytes(kept.token), ca, facts)


def _public_url(url: str) -> str:
    """The TSA's address without credentials or a query, which may hold them."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def media_files(source: Source) -> QuerySet[MediaFile]:
    """Every stored media file attached to a message in scope, as of the checkpoint, by hash."""
    return (
        MediaFile.objects.filter(
            attachment__message__in=source.messages(),
            attachment__entry_id__lt=source.tree_size,
        )
        .distinct()
        .order_by("sha256")
    )


def attachment_name(media: MediaFile) -> str:
    if not _SHA256.fullmatch(media.sha256):
        raise BundleError(f"media file {media.pk} has a malformed SHA-256")
    extension = EXTENSIONS.get(media.mime_type.split(";")[0].strip().lower())
    return f"attachments/{media.sha256}" + (f".{extension}" if extension else "")


def write_attachments(source: Source, target: Target, prefix: str = "") -> None:
    """Copy each media file's bytes, refusing any whose bytes no longer match their hash."""
    for media in media_files(source).iterator(chunk_size=CHUNK):
        name = attachment_name(media)
        try:
            stored = open_media(media)  # checked against the sealed hash as it is read
        except Corrupt:
            raise BundleError(
                f"stored media {media.sha256} no longer matches its sealed hash"
            ) from None
        with target.open(prefix + name) as out, stored:
            while block := stored.read(_COPY):
                out.write(block)
        record = target.files[-1]  # and again as it is written
        if (record.sha256, record.size) != (media.sha256, media.size):
            raise BundleError(f"stored media {media.sha256} no longer matches its sealed hash")


def _write_fixed_files(source: Source, target: Target, prefix: str, stamp: Stamp | None) -> None:
    fixed = {
        "checkpoint.note": source.checkpoint.note.encode(),
        **({TOKEN: stamp.token} if stamp else {}),
        **({TSA_CA: stamp.ca} if stamp and stamp.ca is not None else {}),
        "public-key.pem": checkpoints.public_key_pem().encode(),
        "verifier-key.txt": (checkpoints.verifier_key_text() + "\n").encode(),
        "VERIFY.md": (VERIFIER / "VERIFY.md").read_bytes(),
        "verify.py": (VERIFIER / "verify.py").read_bytes(),
    }
    for name, content in fixed.items():
        with target.open(prefix + name) as out:
            out.write(content)


def _write_sums(target: Target, files: list[FileRecord], prefix: str) -> None:
    """`sha256sum -c SHA256SUMS` checks every other file by hand (the manifest lists this one)."""
    with target.open(prefix + SUMS) as out:
        for start in range(0, len(files), CHUNK):  # 200,000 lines are 20 MB: written in pieces
            chunk = files[start : start + CHUNK]
            out.write(
                "".join(f"{f.sha256}  {f.name.removeprefix(prefix)}\n" for f in chunk).encode()
            )


def write_manifest(
    source: Source,
    target: Target,
    files: list[FileRecord],
    prefix: str = "",
    stamp: Stamp | None = None,
) -> FileRecord:
    """Stream manifest.json (see the module docstring for its layout); return its record."""
    media_count = media_files(source).count()
    header = {
        "format": FORMAT,
        "version": VERSION,
        "export": {
            "id": source.export_id,
            "created_at": rfc3339(source.created_at),
            "requester": source.requester,
            "scope": source.scope.to_json(),
            "label": source.scope.label(),
            "counts": {"messages": source.count(), "attachments": media_count, "files": len(files)},
        },
        "checkpoint": {
            "tree_size": source.tree_size,
            "root": bytes(source.checkpoint.root).hex(),
            "note": source.checkpoint.note,
            "verifier_key": checkpoints.verifier_key_text(),
            "timestamp": stamp.facts if stamp else None,
        },
    }
    listed = (
        {"name": f.name.removeprefix(prefix), "size": f.size, "sha256": f.sha256} for f in files
    )
    with target.open(prefix + MANIFEST) as out:
        out.write((dumps(header)[:-1] + ",\n").encode())
        _section(out, "files", listed)
        _section(out, "attachments", _attachment_items(source))
        _section(out, "entries", _entry_items(source), last=True)
    return target.files[-1]


def dumps(item: dict[str, Any]) -> str:
    """One manifest item: sorted keys, no spaces, ASCII only (escapes keep every line ASCII)."""
    return json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _section(
    out: BinaryIO, name: str, items: Iterable[dict[str, Any]], *, last: bool = False
) -> None:
    out.write(f'"{name}":[\n'.encode())
    pending: list[str] = []
    size, written = 0, False
    for item in items:
        pending.append(dumps(item))
        size += len(pending[-1])
        if size >= _FLUSH:
            out.write(((",\n" if written else "") + ",\n".join(pending)).encode())
            pending, size, written = [], 0, True
    if pending:
        out.write(((",\n" if written else "") + ",\n".join(pending)).encode())
        written = True
    out.write((("\n" if written else "") + ("]}\n" if last else "],\n")).encode())


def _attachment_items(source: Source) -> Iterator[dict[str, Any]]:
    for media in media_files(source).iterator(chunk_size=CHUNK):
        yield {
            "file": attachment_name(media),
            "sha256": media.sha256,
            "size": media.size,
            "mime_type": media.mime_type,
            "seq": media.entry_id,
        }


def _entry_items(source: Source) -> Iterator[dict[str, Any]]:
    proofs = evidence.ProofSource(source.tree_size, bytes(source.checkpoint.root))
    proofs.prepare([])
    proofs.check_root()
    return evidence.entries(_claims(source), proofs)


def _claims(source: Source) -> Iterator[evidence.Claim]:
    """Each message with the entries that annotate it, then the media files' entries. In a
    subject access export, a group's entries are private: their raw items may name others."""
    redaction = source.redaction
    for part in source.parts():
        private = redaction is not None and redaction.private(part.conversation)
        for chunk in part.chunks():
            for row in chunk:
                yield from evidence.claims(row, private=private)
    for media in media_files(source).iterator(chunk_size=CHUNK):
        yield evidence.Claim(media.entry_id, "media", None)
