"""What staff notifications are checked with: fresh wamids, the staff's and the journal's mail
as the local SMTP server received it, and client message bodies beyond plain text (used by
tests/bridge/test_mail.py and test_dispatch.py)."""

import hashlib
import itertools
import json
import time
from typing import Any

from messaging import graph
from messaging.media import _store
from messaging.models import Message
from tests.bridge.conftest import CLIENT, PNID, text_body
from tests.mail_headers import mailboxes, raw_headers

JOURNAL = "journal@archive.bank.example"
STAFF = ["rm@bank.example", "desk@bank.example"]
CLIENT_NAME = f"Jane Client (+{CLIENT})"
OTHER = "447700900456"
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
_wamids = itertools.count(1)


def wamid() -> str:
    return f"wamid.N{next(_wamids):06d}"


def staff_mail(smtp: Any) -> list[Any]:
    return [r for r in smtp.received if JOURNAL not in r.rcpt_tos]


def journal_mail(smtp: Any, address: str = JOURNAL) -> list[Any]:
    return [r for r in smtp.received if r.rcpt_tos == [address]]


def sender(received: Any) -> tuple[str, str]:
    """The From header's (name, address) as a mail client reads it (tests/mail_headers.py)."""
    ((name, address),) = mailboxes(raw_headers(received.raw, "From")[0])
    return name, address


def plain(message: Any) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def html(message: Any) -> str:
    return message.get_body(("html",)).get_content().replace("\r\n", "\n")


def image_body(media_id: str, *, wamid: str, caption: str = "", sender: str = CLIENT) -> bytes:
    image = {"id": media_id, "mime_type": "image/png", "sha256": hashlib.sha256(PHOTO).hexdigest()}
    if caption:
        image["caption"] = caption
    return text_body("", wamid=wamid, sender=sender, extra={"type": "image", "image": image})


def echo_body(text: str, *, wamid: str, to: str = CLIENT) -> bytes:
    """An smb_message_echoes body: the firm wrote from the WhatsApp Business app."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "442079460000", "phone_number_id": PNID},
        "message_echoes": [
            {
                "from": "442079460000",
                "to": to,
                "id": wamid,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "smb_message_echoes", "value": value}]}],
    }
    return json.dumps(body).encode()


def store_photo(message: Message, content: bytes = PHOTO, mime: str = "image/png") -> None:
    """The media fetcher's own storing path (messaging.media._store), without the HTTP part."""
    digest = hashlib.sha256(content).hexdigest()
    media_id = message.payload[message.type]["id"]
    assert _store(message, media_id, graph.Download(content, digest, mime), mime)
