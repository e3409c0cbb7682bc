"""The emails the bridge writes: notifications to staff, journal copies, notices to senders.

A notification is one email per client burst: From "<client> via ClientWindow", Reply-To the
conversation's signed reply address (bridge/tokens.py), a subject naming the client that never
changes (so mail clients thread on it), and threading headers that make one client one thread in
every mailbox (References to a per-conversation root, Outlook's Thread-Topic and Thread-Index).
Bodies are text and HTML from templates (autoescaped); media is attached up to
BRIDGE_ATTACHMENT_MAX_BYTES in all, and linked in the portal beyond that.

The journal copy is the EML export of the message (exports/eml.py), byte for byte.
"""

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr, make_msgid
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from exports import eml
from exports.source import Part
from messaging.models import Conversation, ParticipantProfile
from messaging.participants import latest_names
from review.transcript import Row

from .tokens import reply_address

# Auto-Submitted marks our own mail as machine-written: well-behaved auto-responders stay quiet,
# and our gateway ignores anything marked so (no mail loops).
AUTO_HEADERS = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}


class UnconfiguredBackend(BaseEmailBackend):
    """EMAIL_URL is unset: nothing can be sent; notifications wait and say why."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        raise ConnectionError("EMAIL_URL is not set: no email can be sent")


def connection(journal: bool = False) -> BaseEmailBackend:
    if not journal:
        return get_connection(fail_silently=False)
    names = {
        "EMAIL_HOST": "host",
        "EMAIL_PORT": "port",
        "EMAIL_HOST_USER": "username",
        "EMAIL_HOST_PASSWORD": "password",
        "EMAIL_USE_SSL": "use_ssl",
        "EMAIL_USE_TLS": "use_tls",
        "EMAIL_FILE_PATH": "file_path",
    }
    config = dict(settings.JOURNAL_EMAIL)
    options = {names[k]: v for k, v in config.items() if k in names}
    return get_connection(
        config["EMAIL_BACKEND"], fail_silently=False, timeout=settings.EMAIL_TIMEOUT, **options
    )


@dataclass
class Names:
    """Clients' latest and first names, read once for a batch of notifications."""

    latest: dict[int, str]
    first: dict[int, str]

    @classmethod
    def of(cls, participant_ids: set[int]) -> "Names":
        if not participant_ids:
            return cls({}, {})
        first = (
            ParticipantProfile.objects.filter(participant_id__in=participant_ids)
            .exclude(name="")
            .order_by("participant_id", "id")
            .distinct("participant_id")
            .values_list("participant_id", "name")
        )
        return cls(latest_names(participant_ids), dict(first))


def client_name(conversation: Conversation, names: Names, *, first: bool = False) -> str:
    """The client as staff see them: name (number). With `first`, the first name they ever
    showed, which never changes (a subject that changed would split the mail thread)."""
    if conversation.group_id:
        return eml.one_line(f"WhatsApp group {conversation.group_id}")
    person = conversation.participant
    if person is None:
        return "Unknown client"
    name = (names.first if first else names.latest).get(person.pk, "")
    number = f"+{person.wa_id}" if person.wa_id else person.user_id
    # one line, always: a profile name is the client's to choose, and becomes a header
    return eml.one_line(f"{name} ({number})" if name else number)


def portal_link(conversation: Conversation) -> str:
    path = reverse("review:conversation", args=[conversation.pk])
    return f"{settings.PORTAL_URL}{path}" if settings.PORTAL_URL else path


def _domain() -> str:
    return settings.BRIDGE_FROM_ADDRESS.rpartition("@")[2] or "clientwindow.invalid"


def thread_root(conversation: Conversation) -> str:
    return f"<conversation-{conversation.pk}@{_domain()}>"


def thread_index(conversation: Conversation) -> str:
    """Outlook's Thread-Index: 22 bytes (a FILETIME prefix and a GUID) that Outlook groups a
    conversation by; the same for every email of the conversation."""
    created = conversation.entry.sealed_at
    filetime = int((created.timestamp() + 11_644_473_600) * 10_000_000)
    head = filetime.to_bytes(8, "big")[:6]
    guid = hashlib.sha256(f"clientwindow:{_domain()}:{conversation.pk}".encode()).digest()[:16]
    return base64.b64encode(head + guid).decode()


@dataclass
class Line:
    """One message as a notification shows it."""

    when: datetime | None
    who: str
    text: str
    note: str  # what kind of thing it is, when not plain text ("Photo", "Reacted 👍", …)
    link: str  # the attachment in the portal, when not attached to the email
    attached: str  # the file name, when attached


METADATA_NOTES = {
    "text": "Message",
    "image": "Photo",
    "video": "Video",
    "audio": "Audio",
    "document": "Document",
    "sticker": "Sticker",
    "reaction": "Reaction",
    "edit": "Edited a message",
    "revoke": "Deleted a message",
}


def _describe(row: Row) -> tuple[str, str]:
    message, body = row.message, row.body if isinstance(row.body, dict) else {}
    kind = message.type
    if kind == "text":
        return message.text, ""
    if kind == "reaction":
        emoji = str(body.get("emoji", ""))
        return "", f"Reacted {emoji}" if emoji else "Removed a reaction"
    if kind == "edit":
        return message.text, "Edited a message"
    if kind == "revoke":
        return "", "Deleted a message"
    labels = {
        "image": "Photo",
        "video": "Video",
        "audio": "Voice message or audio",
        "document": "Document",
        "sticker": "Sticker",
        "location": "Location",
        "contacts": "Contact card",
        "button": "Button reply",
        "interactive": "Reply",
    }
    if kind == "document" and body.get("filename"):
        return message.text, f"Document: {body['filename']}"
    return message.text, labels.get(kind, kind.capitalize() or "Message")


def notification_email(
    conversation: Conversation,
    recipients: list[str],
    metadata_only: bool,
    rows: list[Row],
    names: Names,
) -> EmailMultiAlternatives:
    """The email for a burst of one client's messages (`rows`: them decorated, done once for a
    whole batch by bridge/dispatch.py)."""
    name = client_name(conversation, names)
    link = portal_link(conversation)
    lines, files = _lines(rows, name, link, metadata_only)
    context: dict[str, Any] = {
        "client": name,
        "channel": conversation.channel,
        "lines": lines,
        "link": link,
        "metadata_only": metadata_only,
        "group": bool(conversation.group_id),
    }
    # written here, not by Django: a client's name is theirs to choose (eml.mailbox)
    subject = eml.header_text(f"WhatsApp: {client_name(conversation, names, first=True)}")
    mail = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("bridge/notification.txt", context),
        from_email=eml.mailbox(f"{name} via ClientWindow", settings.BRIDGE_FROM_ADDRESS),
        to=recipients,
        reply_to=[reply_address(conversation.pk)],
        headers={
            "Message-ID": make_msgid("cw", _domain()),
            "In-Reply-To": thread_root(conversation),
            "References": thread_root(conversation),
            "Thread-Topic": subject,
            "Thread-Index": thread_index(conversation),
            **AUTO_HEADERS,
        },
    )
    mail.attach_alternative(render_to_string("bridge/notification.html", context), "text/html")
    for filename, content, mime in files:
        mail.attach(filename, content, mime)
    return mail


def _lines(
    rows: list[Row], name: str, link: str, metadata_only: bool
) -> tuple[list[Line], list[tuple[str, bytes, str]]]:
    """One line per message, and the files attached: media within BRIDGE_ATTACHMENT_MAX_BYTES
    for the whole email, a portal link for the rest (a metadata-only route gets neither)."""
    lines: list[Line] = []
    files: list[tuple[str, bytes, str]] = []
    budget = settings.BRIDGE_ATTACHMENT_MAX_BYTES
    tz = timezone.get_current_timezone()
    for row in rows:
        text, note = _describe(row)
        if metadata_only:  # a file name or an emoji is content too
            note = METADATA_NOTES.get(row.message.type, "Message")
        attached = link_to = ""
        stored = row.attachment.file if row.attachment is not None else None
        if stored is not None and not metadata_only:
            if stored.size <= budget:
                budget -= stored.size
                attached = eml.attachment_name(row)
                files.append((attached, eml.read_media(stored), eml.mime_type(stored)))
            else:
                link_to = settings.PORTAL_URL + reverse("review:media", args=[row.message.pk])
        elif row.message.type in ("image", "video", "audio", "document", "sticker"):
            link_to = link
        sent = row.message.sent_at.astimezone(tz) if row.message.sent_at else None
        lines.append(
            Line(
                sent,
                row.sender_name or name,
                "" if metadata_only else text,
                note,
                link_to,
                attached,
            )
        )
    return lines, files


class RawEmail(EmailMessage):
    """An already-rendered RFC 5322 message, sent as it is (the journal copy)."""

    def __init__(self, raw: bytes, from_email: str, to: list[str]) -> None:
        super().__init__(from_email=from_email, to=to)
        self.raw = raw

    def message(self, *, policy: Any = None) -> "_Rendered":  # type: ignore[override]
        return _Rendered(self.raw)


class _Rendered:
    """What Django's SMTP backend asks of a message: its bytes (CRLF line ends already)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def as_bytes(self, linesep: str = "\r\n", **kwargs: Any) -> bytes:
        return self.raw


def journal_email(row: Row, address: str, names: Names) -> RawEmail:
    """The journal copy: the message's EML export, byte for byte."""
    message, conversation = row.message, row.message.conversation
    part = Part(
        conversation=conversation,
        name=names.latest.get(conversation.participant_id or 0, ""),
        count=1,
        first_at=message.sent_at,
        last_at=message.sent_at,
    )
    return RawEmail(eml.message_bytes(None, part, row), settings.BRIDGE_FROM_ADDRESS, [address])


def notice(to: str, subject: str, text: str, *, in_reply_to: str = "") -> EmailMessage:
    """A short machine-written answer to a staff member (a refused or failed reply)."""
    headers = {"Message-ID": make_msgid("cw-notice", _domain()), **AUTO_HEADERS}
    if in_reply_to:
        headers |= {"In-Reply-To": in_reply_to, "References": in_reply_to}
    return EmailMessage(
        subject=subject,
        body=text,
        from_email=formataddr(("ClientWindow", settings.BRIDGE_FROM_ADDRESS)),
        to=[to],
        headers=headers,
    )
