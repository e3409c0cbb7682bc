"""Staff reply emails as tests write and deliver them (tests/bridge/test_inbound.py,
test_inbound_sends.py, test_tokens.py, test_webhooks.py): a reply as a mail client writes it,
received as the gateway does, and what the ledger, the notices and Meta saw of it."""

import json
import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from archive.models import LedgerEntry
from bridge import inbound
from bridge.models import InboundEmail

RM = "rm@bank.example"
SUBJECT = "Re: Jane Client (+447700900123) on WhatsApp"
PDF = b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n" + bytes(range(256)) * 16 + b"\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
RE_ENGAGEMENT = {
    "error": {
        "message": "(#131047) Re-engagement message",
        "type": "OAuthException",
        "code": 131047,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "Message failed to send because more than 24 hours have passed",
        },
    }
}


def reply_email(
    to: str,
    text: str | None = "Done, sold at 101.",
    *,
    sender: str = f"Robert Miller <{RM}>",
    html: str | None = None,
    files: tuple[tuple[bytes, str, str], ...] = (),
    headers: tuple[tuple[str, str], ...] = (),
    message_id: str | None = None,
) -> bytes:
    """A reply as a mail client writes it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = SUBJECT
    message["Date"] = formatdate()
    message["Message-ID"] = message_id or make_msgid("reply", "bank.example")
    for name, value in headers:
        message[name] = value
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    for content, mime, filename in files:
        maintype, subtype = mime.split("/")
        message.add_attachment(content, maintype, subtype, filename=filename)
    return message.as_bytes()


def deliver(raw: bytes, to: str | None = None, envelope_from: str = RM) -> InboundEmail:
    """Receive as the gateway does, process, and return the stored email."""
    stored = inbound.receive(raw, "smtp", envelope_from, [to] if to else [])
    inbound.process_pending()
    stored.refresh_from_db()
    return stored


def fields(entry: LedgerEntry) -> dict[str, Any]:
    return json.loads(bytes(entry.envelope))


def content(entry: LedgerEntry, name: str) -> bytes:
    return bytes(entry.contents.get(name=name).content)


def only_notice(smtp: Any, to: str = RM) -> tuple[EmailMessage, str]:
    """The one notice sent, to `to`: machine-written, so never answered automatically."""
    (received,) = smtp.received
    assert received.rcpt_tos == [to]
    message = received.message
    assert message["To"] == to
    assert message["Auto-Submitted"] == "auto-generated"
    return message, message.get_content()


def media_upload(request: tuple[str, dict[str, str], bytes]) -> dict[str, Any]:
    """The fields of a multipart upload to /media."""
    path, headers, body = request
    boundary = re.search(r"boundary=([^;]+)", headers["Content-Type"])[1].strip('"')  # type: ignore[index]
    found: dict[str, Any] = {"path": path}
    for part in body.split(b"--" + boundary.encode())[1:-1]:
        head, _, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        value = value.removesuffix(b"\r\n")
        name = re.search(rb'name="([^"]+)"', head)[1].decode()  # type: ignore[index]
        filename = re.search(rb'filename="([^"]+)"', head)
        found[name] = value
        if filename:
            found[f"{name}.filename"] = filename[1].decode()
            found[f"{name}.type"] = re.search(rb"Content-Type: (\S+)", head)[1].decode()  # type: ignore[index]
    return found


def paths(meta: Any) -> list[str]:
    return [path.rsplit("/", 1)[1] for path, _, _ in meta.requests]
