"""Signing and posting webhook bodies to a running portal, as Meta would: for
`manage.py simulate_webhook` and the demo conversations `make run` seeds on first start."""

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any

DEMO_CHANNEL = {
    "name": "Demo wealth desk",
    "phone_number_id": "100000000000001",
    "display_number": "442079460000",
    "waba_id": "200000000000002",
}
DEMO_CLIENTS = [
    ("447700900123", "Amelia Hart"),
    ("33612345678", "Étienne Laurent"),
    ("818012345678", "佐藤 花子"),
]
DEMO_LINES = [
    "Good morning, could you send me the latest statement for the growth portfolio?",
    "Also, I'd like to move €50,000 into the bond fund we discussed.",
    "Thanks! 👍",
]


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(url: str, body: bytes, secret: str, timeout: float = 10) -> int:
    """POST a signed body; return the HTTP status (4xx/5xx included, never raised)."""
    request = urllib.request.Request(  # noqa: S310  (the URL is the operator's own portal)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _envelope(field: str, value: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": DEMO_CHANNEL["display_number"],
            "phone_number_id": DEMO_CHANNEL["phone_number_id"],
        },
        **value,
    }
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": DEMO_CHANNEL["waba_id"], "changes": [{"field": field, "value": value}]}],
    }
    return json.dumps(document, ensure_ascii=False).encode()


def demo_bodies(now: int | None = None) -> list[bytes]:
    """A few realistic conversations: texts in three scripts, a reply from the business app,
    its delivery statuses, a reaction and an edit."""
    now = int(time.time()) if now is None else now
    bodies = []
    for c, (wa_id, name) in enumerate(DEMO_CLIENTS):
        contact = {"profile": {"name": name}, "wa_id": wa_id}
        for n, line in enumerate(DEMO_LINES):
            message = {
                "from": wa_id,
                "id": f"wamid.demo-{c}-{n}",
                "timestamp": str(now + n),
                "type": "text",
                "text": {"body": line},
            }
            bodies.append(_envelope("messages", {"contacts": [contact], "messages": [message]}))
        reply = {
            "from": DEMO_CHANNEL["display_number"],
            "to": wa_id,
            "id": f"wamid.demo-{c}-r",
            "timestamp": str(now + 10),
            "type": "text",
            "text": {"body": f"Dear {name.split()[0]}, the statement is on its way."},
        }
        bodies.append(_envelope("smb_message_echoes", {"message_echoes": [reply]}))
        statuses = [
            {
                "id": f"wamid.demo-{c}-r",
                "status": status,
                "timestamp": str(now + 11 + s),
                "recipient_id": wa_id,
            }
            for s, status in enumerate(["sent", "delivered", "read"])
        ]
        bodies.append(_envelope("messages", {"statuses": statuses}))
    reaction = {
        "from": DEMO_CLIENTS[0][0],
        "id": "wamid.demo-react",
        "timestamp": str(now + 20),
        "type": "reaction",
        "reaction": {"message_id": "wamid.demo-0-r", "emoji": "🙏"},
    }
    edit = {
        "from": DEMO_CLIENTS[1][0],
        "id": "wamid.demo-edit",
        "timestamp": str(now + 21),
        "type": "edit",
        "edit": {
            "original_message_id": "wamid.demo-1-1",
            "message": {
                "type": "text",
                "text": {"body": "Also, please move €40,000 into the bond fund."},
            },
        },
    }
    for message, (wa_id, name) in ((reaction, DEMO_CLIENTS[0]), (edit, DEMO_CLIENTS[1])):
        contact = {"profile": {"name": name}, "wa_id": wa_id}
        bodies.append(_envelope("messages", {"contacts": [contact], "messages": [message]}))
    return bodies
