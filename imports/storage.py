"""The bytes of an import: the upload streamed in under a size cap and stored as a media file,
read back to a local temporary copy for the parser, and the zip's members stored as media files.

Both the upload and every member are content-addressed in the records store
(messaging/media.py `store_file`): the same bytes are stored and sealed once, whoever uploads
them.
"""

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from django.conf import settings

from messaging.media import open_media, store_file
from messaging.models import MediaFile

CHUNK = 1024 * 1024
ZIP_MAGIC = b"PK\x03\x04"
MIME_BY_SUFFIX = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".heic": "image/heic",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".3gp": "video/3gpp",
    ".mov": "video/quicktime",
    ".opus": "audio/ogg",
    ".ogg": "audio/ogg",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".aac": "audio/aac",
    ".amr": "audio/amr",
    ".wav": "audio/wav",
    ".pdf": "application/pdf",
    ".vcf": "text/vcard",
    ".txt": "text/plain",
    ".zip": "application/zip",
}
# Message.type of an attached file, from its suffix (WhatsApp names stickers STK-….webp)
TYPE_BY_MIME_PREFIX = (("image/", "image"), ("video/", "video"), ("audio/", "audio"))


class TooLarge(Exception):
    """An upload over CHAT_IMPORT_MAX_BYTES (nothing was stored)."""


def mime_of(name: str) -> str:
    return MIME_BY_SUFFIX.get(Path(name).suffix.lower(), "application/octet-stream")


def message_type(name: str) -> str:
    """image / video / audio / sticker / document: what an attached member is to the archive."""
    base = Path(name).name.upper()
    if base.startswith("STK-") or base.endswith(".WEBP"):
        return "sticker"
    mime = mime_of(name)
    for prefix, kind in TYPE_BY_MIME_PREFIX:
        if mime.startswith(prefix):
            return kind
    return "document"


def spool(stream: IO[bytes], limit: int, into: IO[bytes]) -> tuple[str, int]:
    """Copy `stream` into `into` in chunks, hashing as it goes; TooLarge past `limit` bytes.
    Returns (sha256 hex, size)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(size)
        digest.update(chunk)
        into.write(chunk)
    into.flush()
    into.seek(0)
    return digest.hexdigest(), size


def store_upload(
    stream: IO[bytes], on_create: Callable[[MediaFile], None]
) -> tuple[MediaFile, str, int]:
    """Store an upload byte for byte (TooLarge over CHAT_IMPORT_MAX_BYTES, before anything is
    stored); `on_create` runs when these bytes are new to the archive."""
    limit = settings.CHAT_IMPORT_MAX_BYTES
    with tempfile.TemporaryFile() as copy:
        sha256, size = spool(stream, limit, copy)
        head = copy.read(4)
        copy.seek(0)
        mime = "application/zip" if head == ZIP_MAGIC else "text/plain"
        media = store_file(copy, mime, on_create=on_create, sha256=sha256)
    return media, sha256, size


@contextmanager
def local_copy(media: MediaFile, file_name: str) -> Iterator[Path]:
    """The stored upload as a local file (the parser reads a path), verified against its sealed
    SHA-256, removed afterwards. The suffix is the uploaded name's, which the parser reads."""
    suffix = Path(file_name).suffix[:16]
    with tempfile.TemporaryDirectory(prefix="chat-import-") as folder:
        path = Path(folder) / f"upload{suffix}"
        with open_media(media) as source, path.open("wb") as target:
            shutil.copyfileobj(source, target, CHUNK)
        yield path


def store_member(source: IO[bytes], name: str, on_create: Callable[[MediaFile], None]) -> MediaFile:
    """Store one zip member (read through the parser's size-capped reader)."""
    with tempfile.TemporaryFile() as copy:
        sha256, _size = spool(source, 2**62, copy)
        return store_file(copy, mime_of(name), on_create=on_create, sha256=sha256)
