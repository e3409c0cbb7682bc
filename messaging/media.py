"""Fetching the media a message carries, checking Meta's sha256, storing it content-addressed and
sealing an attachment entry. Transient failures are retried with backoff while Meta still
serves the media id (7 days); what can never be fetched is recorded as such, also sealed."""

import base64
import binascii
import hashlib
import io
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max
from django.utils import timezone

from archive import ledger, objectstore
from archive.envelope import Fact
from messaging import graph, hooks
from messaging.models import MEDIA_TYPES, Attachment, MediaAttempt, MediaFile, Message

logger = logging.getLogger(__name__)
MEDIA_ID_LIFETIME = timedelta(days=7)  # Meta's media ids from webhooks expire after 7 days
MAX_BACKOFF = timedelta(hours=6)


def media_id_of(message: Message) -> str:
    body = message.payload.get(message.type) if isinstance(message.payload, dict) else None
    return str(body.get("id", "")) if message.type in MEDIA_TYPES and isinstance(body, dict) else ""


def _sha256_matches(declared: object, hex_digest: str) -> bool:
    """Meta writes sha256 as base64 in webhooks and as hex elsewhere: accept either."""
    if not isinstance(declared, str) or not declared:
        return True  # nothing declared, nothing to contradict
    if declared.lower() == hex_digest:
        return True
    try:
        return base64.b64decode(declared, validate=True).hex() == hex_digest
    except (binascii.Error, ValueError):
        return False


def _candidates(limit: int) -> Any:  # QuerySet[Message] annotated with tries and last_try
    """The oldest 4 * `limit` messages with media and no attachment record, with their tries."""
    return (
        Message.objects.filter(type__in=MEDIA_TYPES, attachment__isnull=True)
        .annotate(tries=Count("media_attempts"), last_try=Max("media_attempts__attempted_at"))
        .order_by("id")[: limit * 4]
    )


def _due(tries: int, last_try: datetime | None, now: datetime) -> bool:
    """Never tried, or the backoff since the last try (2^(tries-1) minutes, at most 6 h) over."""
    wait = min(timedelta(minutes=2 ** max(tries - 1, 0)), MAX_BACKOFF)
    return tries == 0 or last_try is None or last_try + wait <= now


def due_messages(limit: int = 50) -> Sequence[Message]:
    """Messages with media, no attachment record yet, and no retry waiting. Their delivery is
    read for its time only: not its body (a whole webhook POST, kilobytes to megabytes each)."""
    now = timezone.now()
    candidates = (
        _candidates(limit)
        .select_related("channel", "delivery")
        .defer("delivery__body", "delivery__headers")
    )
    return [m for m in candidates if _due(m.tries, m.last_try, now)][:limit]


def count_due(limit: int = 1000) -> int:
    """How many messages due_messages(limit) would give (the health page's figure), from the
    tries alone."""
    now = timezone.now()
    tries = _candidates(limit).values_list("tries", "last_try")
    return min(sum(1 for n, last in tries if _due(n, last, now)), limit)


def fetch_pending_media(limit: int = 50) -> int:
    """Try every due message once; return how many now have an attachment record. One
    message's failure, whatever it is, is recorded as a failed attempt (retried with backoff)
    and never stops the others."""
    recorded = 0
    for message in due_messages(limit):
        try:
            recorded += fetch_media(message)
        except Exception as error:
            logger.exception("media of message %s: unexpected failure", message.pk)
            MediaAttempt.objects.create(message=message, error=f"failed: {type(error).__name__}")
    return recorded


def fetch_media(message: Message) -> bool:
    """One attempt. True when an attachment record (stored or never-fetchable) was sealed."""
    media_id = media_id_of(message)
    if not media_id:
        return _record(message, "", Attachment.Outcome.UNAVAILABLE, "no media id in the webhook")
    try:
        info = graph.media_info(media_id, message.channel.access_token)
        fetched = graph.download(
            info["url"], message.channel.access_token, settings.WHATSAPP_MEDIA_MAX_BYTES
        )
        declared = info.get("sha256") or message.payload[message.type].get("sha256")
        if not _sha256_matches(declared, fetched.sha256):
            raise graph.GraphError("sha256 differs from Meta's")
    except graph.GraphError as exc:
        return _failed(message, media_id, exc)
    try:
        return _store(message, media_id, fetched, str(info.get("mime_type") or fetched.mime_type))
    except objectstore.StoreError as exc:  # the bucket unreachable or refusing: retry later
        logger.warning("media of message %s: %s", message.pk, exc)
        MediaAttempt.objects.create(message=message, error=f"records store: {exc}")
        return False


def _failed(message: Message, media_id: str, error: graph.GraphError) -> bool:
    logger.warning("media of message %s: %s", message.pk, error)
    received = message.delivery.received_at if message.delivery else message.entry.sealed_at
    expired = received + MEDIA_ID_LIFETIME < timezone.now()
    if error.permanent or expired:
        refused = error.permanent and not error.gone
        outcome = Attachment.Outcome.REFUSED if refused else Attachment.Outcome.UNAVAILABLE
        return _record(message, media_id, outcome, str(error))
    MediaAttempt.objects.create(message=message, error=str(error))
    return False


def store_file(
    content: bytes | IO[bytes],
    mime: str,
    on_create: Callable[[MediaFile], None] | None = None,
    sha256: str | None = None,
) -> MediaFile:
    """The media file for these bytes (or this file, read from its start): stored
    content-addressed in the records store and sealed as `media.file` the first time they are
    seen (`on_create` then runs in the same transaction), else the one already stored. Fetched
    media and files staff send (bridge/outbound.py) both come here."""
    body = io.BytesIO(content) if isinstance(content, bytes) else content
    sha256 = sha256 or _sha256_of(body)  # a download has hashed it already
    size = body.seek(0, io.SEEK_END)
    body.seek(0)
    name = f"media/{sha256[:2]}/{sha256}"
    store = objectstore.records()
    if not store.exists(name):  # content-addressed: the same bytes are stored once
        store.save_stream(name, body)
    media = MediaFile.objects.filter(sha256=sha256).first()
    if media is not None:
        return media
    fact = Fact(
        "media.file",
        {"size": size, "mime_type": mime[:200]},
        {"sha256": bytes.fromhex(sha256)},
    )
    try:
        with transaction.atomic():
            (entry,) = ledger.append([fact])
            media = MediaFile.objects.create(
                sha256=sha256,
                size=size,
                mime_type=mime[:200],
                storage_name=name,
                entry=entry,
            )
            if on_create is not None:
                on_create(media)
    except IntegrityError:  # the same bytes, stored by another worker meanwhile
        media = MediaFile.objects.get(sha256=sha256)
    return media


def _store(message: Message, media_id: str, fetched: graph.Download, mime: str) -> bool:
    with transaction.atomic():
        media = store_file(fetched.content, mime, sha256=fetched.sha256)
        return _record(message, media_id, Attachment.Outcome.STORED, "", media)


def _record(
    message: Message, media_id: str, outcome: str, reason: str, media: MediaFile | None = None
) -> bool:
    fact = Fact(
        "message.attachment",
        {"message_seq": message.entry_id, "outcome": str(outcome)},
        {
            "media_id": media_id.encode(),
            "sha256": bytes.fromhex(media.sha256) if media else b"",
            "reason": reason.encode(),
        },
    )
    try:
        with transaction.atomic():
            (entry,) = ledger.append([fact])
            attachment = Attachment.objects.create(
                message=message,
                media_id=media_id[:200],
                outcome=outcome,
                reason=reason,
                file=media,
                entry=entry,
            )
            hooks.attached(attachment, media)  # retention/assign.py, in this transaction
            hooks.media_stored()  # the bridge: a notification may be waiting for this media
    except IntegrityError:
        if Attachment.objects.filter(message=message).exists():
            return False  # another worker recorded this message's media first
        raise
    return True


def open_media(stored: MediaFile) -> IO[bytes]:
    """The stored bytes of a media file, checked against its sealed SHA-256 first
    (objectstore.Corrupt if they differ: nothing unverified is served or exported)."""
    return objectstore.records().open_verified(stored.storage_name, stored.sha256)


def stored_files() -> Iterator[tuple[str, str]]:
    """(name, sha256) of every media file still stored (a disposed one has no name), for
    `manage.py storage migrate` (archive/storage_migration.py)."""
    files = MediaFile.objects.exclude(storage_name="").order_by("pk")
    return files.values_list("storage_name", "sha256").iterator(chunk_size=1000)


def _sha256_of(body: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := body.read(objectstore.CHUNK):
        digest.update(chunk)
    body.seek(0)
    return digest.hexdigest()
