"""The evidence bundle: one ZIP that an outsider verifies offline, without trusting us.

It holds every other format: the single-file ones in a folder of their own (`pdf/`, `csv/`),
and EML and RSMF, which yield a file per message or per conversation-day, as one nested ZIP each
(`eml.zip`, `rsmf.zip`, laid out as those formats' own exports); each stored media file in scope
once (`attachments/<sha256>.<ext>`), the checkpoint note with the keys that check it, the
checkpoint's RFC 3161 timestamp token and the TSA's certificates when it has one
(`checkpoint.tst`, `tsa-ca.pem`), VERIFY.md and verify.py (exports/verifier/), SHA256SUMS for
`sha256sum -c`, and `manifest.json`: the export, the checkpoint (with the token's genTime, TSA
and imprint, or `"timestamp":null`), the size and SHA-256 of every other file (a nested ZIP's
covers every byte of every message file in it), the media files with the ledger entries that
seal them, and every ledger entry in scope with its envelope, disclosed contents and inclusion
proof (exports/evidence.py; a subject access export withholds the contents that may name
others). `manifest.sig` signs the manifest's SHA-256 with the ledger's key as a signed note, so
every byte of the manifest is authenticated, not only what the ledger proves.

manifest.json is written as it is read, one item per line, so memory stays flat at any size:
a header line, then the sections "files", "attachments" and "entries", each opened by its own
line and closed by `],` (the last by `]}`). It is ordinary JSON; verify.py reads it line by line.
The same scope against the same checkpoint gives the same bytes, apart from the export's id and
time and the signature over a manifest that holds them.

Memory does not grow with the export: the files written are listed in a temporary file
(`_Listing`), not in memory, and every ZIP here is written by `ZipStream`, which keeps no
record per member (Python's zipfile keeps ~0.7 KB each until it closes: 700 MB for a million
EML files). Nesting EML and RSMF keeps the bundle's own directory, SHA256SUMS and the
manifest's "files" to a few lines plus the media, and the auditor's disk free of a million
loose files until they unpack `eml.zip` themselves.
"""

import hashlib
import json
import re
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast
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
from .target import FileRecord, Target, checked_name

FORMAT = "clientwindow-evidence-bundle"
VERSION = 1
MANIFEST, SIGNATURE, SUMS = "manifest.json", "manifest.sig", "SHA256SUMS"
TOKEN, TSA_CA = "checkpoint.tst", "tsa-ca.pem"
SIGNATURE_TITLE = "clientwindow export manifest"
VERIFIER = Path(__file__).resolve().parent / "verifier"
_FLUSH = 1 << 20  # manifest bytes gathered before a write to the ZIP stream
_COPY = 1 << 20
# The formats that yield a file per message or per conversation-day, nested as one ZIP each.
NESTED = ("eml", "rsmf")
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
    listing = _Listing(target, prefix)
    for fmt in formats.FORMATS:
        if fmt in NESTED:
            write_nested(source, listing, prefix, fmt)
        elif fmt != "bundle":  # eml/rsmf, not nested, would name their own folders
            folder = f"{fmt}/" if formats.single_file(fmt) else ""
            formats.writer(fmt)(source, listing, prefix + folder)
    write_attachments(source, listing, prefix)
    _write_fixed_files(source, listing, prefix, stamp)
    _write_sums(listing, prefix)
    manifest = write_manifest(source, listing, prefix, stamp)
    body = f"{SIGNATURE_TITLE}\n{source.export_id}\n{manifest.sha256}\n"
    note = signing.sign_note(body, checkpoints.key_name(), checkpoints.signing_key())
    with target.open(prefix + SIGNATURE) as out:
        out.write(note.encode())


def write_nested(source: Source, target: Target, prefix: str, fmt: str) -> None:
    """`<fmt>.zip`: the format's files as its own export lays them out (`eml/<conversation>/
    <seq>.eml`), in a ZIP written through the bundle's member as it streams."""
    with target.open(f"{prefix}{fmt}.zip") as out:
        nested = ZipStream(out, seekable=False)
        formats.writer(fmt)(source, nested, "")
        nested.close()


class _Listing:
    """The bundle's target as its writers see it. Each file written is listed (name, size,
    SHA-256) in a temporary file rather than in memory; SHA256SUMS and the manifest's "files"
    are read back from it. `files` holds the last file's record, as the Target protocol says."""

    def __init__(self, target: Target, prefix: str) -> None:
        self.target, self.prefix = target, prefix
        self.files: list[FileRecord] = []
        self.count = 0
        self._spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  closed with the bundle

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        with self.target.open(name) as out:
            yield out
        record = self.target.files[-1]
        self.files[:] = [record]
        self._spool.seek(0, 2)
        line = f"{record.size} {record.sha256} {record.name.removeprefix(self.prefix)}\n"
        self._spool.write(line.encode())  # checked names have no spaces or line ends
        self.count += 1

    def records(self) -> Iterator[FileRecord]:
        """Every file listed so far, in the order written, names without the prefix."""
        self._spool.seek(0)
        for line in self._spool:
            size, sha256, name = line.decode().rstrip("\n").split(" ", 2)
            yield FileRecord(name, int(size), sha256)


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


def _write_sums(listing: "_Listing", prefix: str) -> None:
    """`sha256sum -c SHA256SUMS` checks every other file by hand (the manifest lists this one)."""
    with listing.open(prefix + SUMS) as out:
        lines: list[str] = []
        for record in listing.records():
            lines.append(f"{record.sha256}  {record.name}\n")
            if len(lines) == CHUNK:
                out.write("".join(lines).encode())
                lines = []
        out.write("".join(lines).encode())


def write_manifest(
    source: Source, listing: "_Listing", prefix: str = "", stamp: Stamp | None = None
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
            "counts": {
                "messages": source.count(),
                "attachments": media_count,
                "files": listing.count,
            },
        },
        "checkpoint": {
            "tree_size": source.tree_size,
            "root": bytes(source.checkpoint.root).hex(),
            "note": source.checkpoint.note,
            "verifier_key": checkpoints.verifier_key_text(),
            "timestamp": stamp.facts if stamp else None,
        },
    }
    listed = ({"name": f.name, "size": f.size, "sha256": f.sha256} for f in listing.records())
    with listing.open(prefix + MANIFEST) as out:
        out.write((dumps(header)[:-1] + ",\n").encode())
        _section(out, "files", listed)
        _section(out, "attachments", _attachment_items(source))
        _section(out, "entries", _entry_items(source), last=True)
    return listing.files[-1]


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


# --------------------------------------------------------------------------- ZIP, streamed

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_END64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR = struct.Struct("<IIQI")
_NEEDED = 45  # ZIP64: every local header gives its sizes in a ZIP64 field (zipfile's force_zip64)
_MADE = 3 << 8 | _NEEDED  # made on Unix, as exports/target.py's members; verify.py checks both
_MODE = 0o644 << 16
_DATE = 1 << 5 | 1  # 1980-01-01 00:00, target.ZIP_TIME: no wall clock in the bytes
_LIMIT = (1 << 31) - 1  # larger sizes and offsets go to ZIP64 fields, as zipfile does
_MAX16, _MAX32 = 0xFFFF, 0xFFFFFFFF
_SPOOL = 8 << 20  # a nested member is held in memory up to this, then on disk
# Stored, not deflated again: ZIPs (the nested archives) and media that is compressed already.
STORED = (".zip", ".jpg", ".png", ".gif", ".webp", ".mp3", ".mp4", ".m4a", ".ogg", ".aac",
          ".amr", ".3gp", ".docx", ".xlsx", ".pptx")  # fmt: skip


class _Member:
    """One member's bytes on their way out: CRC-32, SHA-256 and size of what the writer gives,
    deflated (raw, as ZIP wants it) unless stored."""

    def __init__(self, out: Any, deflate: bool) -> None:
        self.out, self.crc, self.size, self.packed = out, 0, 0, 0
        self.digest = hashlib.sha256()
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15) if deflate else None

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.digest.update(data)
        self.size += len(data)
        self._out(self.deflater.compress(data) if self.deflater else data)
        return len(data)

    def finish(self) -> None:
        if self.deflater:
            self._out(self.deflater.flush())

    def _out(self, data: bytes) -> None:
        if data:
            self.out.write(data)
            self.packed += len(data)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True


class ZipStream:
    """A ZIP written front to back that keeps nothing per member: each member's central
    directory record goes to a temporary file when the member ends, and is copied out after
    the last. A Target (exports/target.py): `open(name)`, and `files` with the record of the
    last member written (exports/bundle.py's _Listing lists them as they come).

    On a seekable file (the bundle itself) a member streams straight to it and its local header
    is completed afterwards, as zipfile does. Into a stream that cannot seek (a nested ZIP,
    written as a member of the bundle) each member is spooled first (memory up to 8 MB, then
    disk): its local header must hold its CRC and sizes before its data.

    The records are those of exports/target.py's ZipTarget (zipfile with force_zip64): fixed
    time, mode 0644, made on Unix, a ZIP64 field in every local header, ZIP64 fields in the
    directory only where a value needs one, ZIP64 end records only when the directory does,
    which verify.py reads strictly. Names are checked, not remembered: the writers give each
    file its own name (a seq, a conversation and day, a hash).
    """

    def __init__(self, sink: BinaryIO, *, seekable: bool) -> None:
        self.sink, self.seekable = sink, seekable
        self.files: list[FileRecord] = []
        self.offset = 0  # bytes written so far
        self.count = 0
        self._directory: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  closed by close()

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        encoded = checked_name(name).encode("ascii")  # safe names are ASCII
        method = 0 if name.lower().endswith(STORED) else 8
        start = self.offset
        if self.seekable:
            self._write(_local(encoded, method, 0, 0, 0))
            member = _Member(self, deflate=method == 8)
            yield cast(BinaryIO, member)
            member.finish()
            end = self.offset
            self.sink.seek(start)
            self.sink.write(_local(encoded, method, member.crc, member.packed, member.size))
            self.sink.seek(end)
        else:
            with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as spool:
                member = _Member(spool, deflate=method == 8)
                yield cast(BinaryIO, member)
                member.finish()
                self._write(_local(encoded, method, member.crc, member.packed, member.size))
                spool.seek(0)
                while block := spool.read(_COPY):
                    self._write(block)
        self._directory.write(_central(encoded, method, member, start))
        self.count += 1
        self.files[:] = [FileRecord(name, member.size, member.digest.hexdigest())]

    def write(self, data: bytes) -> int:
        """What a seekable member streams through (counted)."""
        return self._write(data)

    def _write(self, data: bytes) -> int:
        self.sink.write(data)
        self.offset += len(data)
        return len(data)

    def close(self) -> None:
        """The central directory and the end records; the sink stays open."""
        at = self.offset
        self._directory.seek(0)
        while block := self._directory.read(_COPY):
            self._write(block)
        self._directory.close()
        size, count = self.offset - at, self.count
        if count >= _MAX16 or at > _LIMIT or size > _LIMIT:
            record = self.offset
            self._write(_END64.pack(0x06064B50, 44, _NEEDED, _NEEDED, 0, 0, count, count, size, at))
            self._write(_LOCATOR.pack(0x07064B50, 0, record, 1))
        count, size, at = min(count, _MAX16), min(size, _MAX32), min(at, _MAX32)
        self._write(_END.pack(0x06054B50, 0, 0, count, count, size, at, 0))


def _local(name: bytes, method: int, crc: int, packed: int, size: int) -> bytes:
    extra = struct.pack("<HHQQ", 1, 16, size, packed)
    fields = (0x04034B50, _NEEDED, 0, method, 0, _DATE, crc, _MAX32, _MAX32, len(name), len(extra))
    return _LOCAL.pack(*fields) + name + extra


def _central(name: bytes, method: int, member: _Member, offset: int) -> bytes:
    large: list[int] = []
    size, packed = member.size, member.packed
    if size > _LIMIT or packed > _LIMIT:
        large += [size, packed]
        size = packed = _MAX32
    if offset > _LIMIT:
        large.append(offset)
        offset = _MAX32
    extra = struct.pack(f"<HH{len(large)}Q", 1, 8 * len(large), *large) if large else b""
    fields = (0x02014B50, _MADE, _NEEDED, 0, method, 0, _DATE, member.crc, packed, size)
    return _CENTRAL.pack(*fields, len(name), len(extra), 0, 0, 0, _MODE, offset) + name + extra


@contextmanager
def zip_stream(path: Path) -> Iterator[ZipStream]:
    """A new ZIP file at `path`, written by ZipStream (a bundle, or an EML or RSMF export)."""
    with path.open("xb") as sink:
        archive = ZipStream(sink, seekable=True)
        yield archive
        archive.close()
