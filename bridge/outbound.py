"""Sending to a client through the Cloud API on a staff member's behalf, archived like any message.

Every part (a text, a file, a template) goes through the same three steps:

1. its request is sealed (`message.send`) and committed, *before* anything leaves: whatever
   happens next, the archive holds what the firm tried to say;
2. it is POSTed to `/{phone-number-id}/messages` (files first uploaded to `/{id}/media`);
3. Meta's answer is sealed: the archived outbound `Message` (source "api", with the wamid its
   statuses will name), or `message.send_failed` with Meta's refusal.

A send interrupted after the request left (a timeout) may or may not have reached the client.
It is sealed as failed with outcome "unknown" and never resent automatically: a duplicate
message to a client is worse than a person deciding.

Free text, media and reactions may only be sent inside WhatsApp's customer-service window (24 h
since the client last wrote); outside it only an approved template may (`window_open`).
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from archive import ledger
from archive.envelope import Fact, rfc3339
from messaging import graph, summaries
from messaging.media import store_file
from messaging.models import (
    Attachment,
    Conversation,
    Direction,
    MediaFile,
    Message,
)
from retention import assign as retention

from .models import InboundEmail, MessageTemplate, Outbound

logger = logging.getLogger(__name__)
WINDOW = timedelta(hours=24)
# What WhatsApp accepts per media type (bigger images and videos go as documents).
SEND_LIMITS = {"image": 5 * 1024**2, "video": 16 * 1024**2, "audio": 16 * 1024**2}
DOCUMENT_LIMIT = 100 * 1024**2
IMAGE_TYPES = ("image/jpeg", "image/png")
VIDEO_TYPES = ("video/mp4", "video/3gpp")
AUDIO_TYPES = ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg")


class CannotSend(Exception):
    """Nothing was sent, for a reason the staff member is told in these words."""


@dataclass(frozen=True)
class Text:
    body: str


@dataclass(frozen=True)
class File:
    content: bytes
    mime_type: str
    filename: str
    caption: str = ""


@dataclass(frozen=True)
class Template:
    template: MessageTemplate
    parameters: tuple[str, ...] = ()


Part = Text | File | Template


@dataclass(frozen=True)
class Author:
    """Who is sending, and through what: the staff user (if known), their address, the email."""

    source: str  # Outbound.Source
    user: Any = None  # the staff member's User, when known
    address: str = ""
    email: InboundEmail | None = None
    submission: str = ""  # the portal form's one-time key


def last_client_message(conversation: Conversation) -> datetime | None:
    found: datetime | None = Message.objects.filter(
        conversation=conversation, direction=Direction.INBOUND
    ).aggregate(last=Max("sent_at"))["last"]
    return found


def window_open(conversation: Conversation, now: datetime | None = None) -> bool:
    last = last_client_message(conversation)
    return last is not None and (now or timezone.now()) < last + WINDOW


def window_closes(conversation: Conversation) -> datetime | None:
    last = last_client_message(conversation)
    return last + WINDOW if last else None


def media_type(mime_type: str, size: int) -> str:
    """The WhatsApp message type a file goes as; a document when nothing narrower fits."""
    mime = mime_type.lower()
    if mime in IMAGE_TYPES and size <= SEND_LIMITS["image"]:
        return "image"
    if mime in VIDEO_TYPES and size <= SEND_LIMITS["video"]:
        return "video"
    if mime in AUDIO_TYPES and size <= SEND_LIMITS["audio"]:
        return "audio"
    return "document"


def check(conversation: Conversation, parts: list[Part]) -> None:
    """Refuse (CannotSend) what cannot go, before anything is sealed or sent."""
    channel = conversation.channel
    if not parts:
        raise CannotSend("There was nothing to send: the reply had no text and no attachments.")
    if not channel.active or not channel.access_token:
        raise CannotSend(f"The channel {channel} is not set up to send messages.")
    if _recipient(conversation) is None:
        raise CannotSend("This conversation has no WhatsApp recipient to send to.")
    for part in parts:
        if isinstance(part, File) and len(part.content) > DOCUMENT_LIMIT:
            raise CannotSend(
                f"The attachment {part.filename!r} is larger than WhatsApp's 100 MB limit."
            )
        if isinstance(part, Template):
            if part.template.channel_id != channel.pk or not part.template.active:
                raise CannotSend(f"The template {part.template.name!r} is not approved here.")
            if len(part.parameters) != part.template.parameters:
                raise CannotSend(
                    f"The template {part.template.name!r} takes {part.template.parameters} "
                    f"parameter(s), not {len(part.parameters)}."
                )
    free = [p for p in parts if not isinstance(p, Template)]
    if free and not window_open(conversation):
        closes = window_closes(conversation)
        since = (
            f"the client last wrote at {(closes - WINDOW):%Y-%m-%d %H:%M} UTC"
            if closes
            else "the client has never written"
        )
        raise CannotSend(
            "WhatsApp's 24-hour customer-service window is closed "
            f"({since}): free text and files cannot be sent. Send an approved template instead."
        )


def send(conversation: Conversation, parts: list[Part], author: Author) -> list[Outbound]:
    """Check, upload every file, then send every part in order, stopping at the first Meta
    refuses. Returns what was attempted; raises CannotSend when nothing was sent."""
    check(conversation, parts)
    # every file is uploaded before anything is sent: an upload Meta refuses stops the whole
    # reply before the client has seen any of it
    requests = [_request(conversation, part) for part in parts]
    done: list[Outbound] = []
    for body, media in requests:
        outbound = _seal_request(conversation, author, body, media)
        done.append(outbound)
        _deliver(outbound)
        if outbound.state != Outbound.State.SENT:
            break
    return done


def _recipient(conversation: Conversation) -> dict[str, str] | None:
    if conversation.group_id:
        return {"recipient_type": "group", "to": conversation.group_id}
    person = conversation.participant
    if person is None:
        return None
    if person.wa_id:
        return {"recipient_type": "individual", "to": person.wa_id}
    if person.user_id:
        return {"recipient_type": "individual", "recipient": person.user_id}
    return None


def _request(conversation: Conversation, part: Part) -> tuple[dict[str, Any], MediaFile | None]:
    """The body for /messages (uploading and archiving a file's bytes first)."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", **(_recipient(conversation) or {})}
    if isinstance(part, Text):
        body |= {"type": "text", "text": {"preview_url": False, "body": part.body}}
        return body, None
    if isinstance(part, Template):
        template: dict[str, Any] = {
            "name": part.template.name,
            "language": {"code": part.template.language},
        }
        if part.parameters:
            template["components"] = [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": p} for p in part.parameters],
                }
            ]
        body |= {"type": "template", "template": template}
        return body, None
    kind = media_type(part.mime_type, len(part.content))
    channel = conversation.channel
    try:
        media_id = graph.upload_media(
            channel.phone_number_id,
            channel.access_token,
            part.content,
            part.mime_type,
            part.filename,
        )
    except graph.SendError as exc:
        raise CannotSend(
            f"WhatsApp did not accept the attachment {part.filename!r}: {exc}"
        ) from None
    media: dict[str, Any] = {"id": media_id}
    if kind == "document":
        media["filename"] = part.filename
    if part.caption and kind != "audio":
        media["caption"] = part.caption
    body |= {"type": kind, kind: media}
    # kept like received media; retention from the moment it is stored, sent or not
    stored = store_file(
        part.content, part.mime_type, lambda media: retention.media_stored(media, channel.pk)
    )
    return body, stored


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode()


def _user_id(author: Author) -> int | None:
    return int(author.user.pk) if author.user is not None else None


@transaction.atomic
def _seal_request(
    conversation: Conversation, author: Author, body: dict[str, Any], media: MediaFile | None
) -> Outbound:
    channel = conversation.channel
    fact = Fact(
        "message.send",
        {
            "phone_number_id": channel.phone_number_id,
            "conversation_seq": conversation.entry_id,
            "type": body["type"],
            "source": str(author.source),
            "user": _user_id(author),
            "email_seq": author.email.entry_id if author.email else None,
            "media_seq": media.entry_id if media else None,
        },
        {"request": _json(body), "sender": author.address.encode()},
    )
    (entry,) = ledger.append([fact])
    retention.bridged(entry, "message.send", channel.pk, conversation.pk)
    return Outbound.objects.create(
        conversation=conversation,
        source=author.source,
        email=author.email,
        user=author.user,
        sender=author.address[:320],
        submission=author.submission[:64],
        type=body["type"],
        request=body,
        media=media,
        send_entry=entry,
    )


def _deliver(outbound: Outbound) -> None:
    channel = outbound.conversation.channel
    try:
        answer = graph.send_message(channel.phone_number_id, channel.access_token, outbound.request)
    except graph.SendError as exc:
        _refused(outbound, exc)
        return
    # Meta's answer is kept at once: were sealing it to fail, recover_interrupted() still
    # knows the message went, and under which wamid
    Outbound.objects.filter(pk=outbound.pk).update(response=answer)
    _accepted(outbound, answer)


@transaction.atomic
def _accepted(outbound: Outbound, answer: dict[str, Any]) -> None:
    conversation = outbound.conversation
    channel = conversation.channel
    wamid = str(answer["messages"][0]["id"])[:250]
    now = timezone.now()
    payload = {k: v for k, v in outbound.request.items() if k != "messaging_product"}
    payload |= {"id": wamid, "timestamp": str(int(now.timestamp()))}
    text = _text_of(payload)
    fact = Fact(
        "message",
        {
            "delivery": None,
            "phone_number_id": channel.phone_number_id,
            "direction": Direction.OUTBOUND.value,
            "source": "api",
            "type": outbound.type,
            "sent_at": rfc3339(now),
            "send_seq": outbound.send_entry_id,
        },
        {"wamid": wamid.encode(), "item": _json(payload), "text": text.encode()},
    )
    (entry,) = ledger.append([fact])
    message = Message.objects.create(
        channel=channel,
        wamid=wamid,
        conversation=conversation,
        direction=Direction.OUTBOUND,
        source="api",
        type=outbound.type,
        sender=None,
        sent_at=now,
        text=text,
        payload=payload,
        delivery=None,
        entry=entry,
    )
    retention.sent(message)
    summaries.record([], [message])
    if outbound.media is not None:
        _attach(message, outbound)
    outbound.state = Outbound.State.SENT
    outbound.response = answer
    outbound.message = message
    outbound.result_entry = entry
    outbound.save(update_fields=["state", "response", "message", "result_entry"])
    from .dispatch import wake

    transaction.on_commit(wake)


def _attach(message: Message, outbound: Outbound) -> None:
    """The file sent is this message's attachment (the media fetcher never fetches it)."""
    media = outbound.media
    assert media is not None
    media_id = str(outbound.request[outbound.type]["id"])
    fact = Fact(
        "message.attachment",
        {"message_seq": message.entry_id, "outcome": str(Attachment.Outcome.STORED)},
        {"media_id": media_id.encode(), "sha256": bytes.fromhex(media.sha256), "reason": b""},
    )
    (entry,) = ledger.append([fact])
    attachment = Attachment.objects.create(
        message=message,
        media_id=media_id[:200],
        outcome=Attachment.Outcome.STORED,
        file=media,
        entry=entry,
    )
    retention.attached(attachment, media)


def _text_of(payload: dict[str, Any]) -> str:
    kind = payload.get("type")
    body = payload.get(kind) if isinstance(kind, str) else None
    if kind == "text" and isinstance(body, dict):
        return str(body.get("body", ""))
    if kind == "template" and isinstance(body, dict):
        params = [
            str(p.get("text", ""))
            for c in body.get("components", [])
            for p in c.get("parameters", [])
        ]
        return " ".join([str(body.get("name", "")), *params]).strip()
    if isinstance(body, dict):
        return str(body.get("caption", ""))
    return ""


@transaction.atomic
def _refused(outbound: Outbound, error: graph.SendError) -> None:
    outcome = "unknown" if error.uncertain else "refused"
    fact = Fact(
        "message.send_failed",
        {
            "send_seq": outbound.send_entry_id,
            "outcome": outcome,
            "phone_number_id": outbound.conversation.channel.phone_number_id,
        },
        {"error": str(error).encode(), "response": _json(error.body)},
    )
    (entry,) = ledger.append([fact])
    retention.bridged(
        entry, "message.send_failed", outbound.conversation.channel_id, outbound.conversation_id
    )
    outbound.state = Outbound.State.UNKNOWN if error.uncertain else Outbound.State.FAILED
    outbound.error = str(error)
    outbound.response = error.body
    outbound.result_entry = entry
    outbound.save(update_fields=["state", "error", "response", "result_entry"])
    logger.warning(
        "outbound %s to conversation %s: %s", outbound.pk, outbound.conversation_id, error
    )


def recover_interrupted(older_than: timedelta = timedelta(minutes=10)) -> int:
    """Sends left "sending" by a crash: mark them unknown (sealed); never resend."""
    stale = Outbound.objects.filter(
        state=Outbound.State.SENDING, created_at__lt=timezone.now() - older_than
    )
    count = 0
    for outbound in stale.select_related("conversation__channel", "media"):
        answer = outbound.response if isinstance(outbound.response, dict) else {}
        if answer.get("messages"):  # Meta accepted it; only sealing its answer was interrupted
            _accepted(outbound, answer)
        else:
            error = graph.SendError("interrupted: the worker stopped mid-send", uncertain=True)
            _refused(outbound, error)
        count += 1
    return count
