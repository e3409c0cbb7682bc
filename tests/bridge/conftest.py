"""The bridge's test parts: a real SMTP server on loopback (aiosmtpd) that keeps what it
accepts, a local HTTP server speaking the Graph API's send and upload shapes (and taking
Slack/Teams webhook POSTs), and helpers that capture client messages through the real webhook
and sequencer."""

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.urls import reverse

from bridge.models import InboundEmail, Route
from bridge.tokens import reply_address
from messaging.models import Channel, Conversation, Message
from messaging.sequencer import process_deliveries
from tests.messaging.conftest import SECRET, sign

PNID = "106540352242922"
TOKEN = "EAAG-bridge-token"
CLIENT = "447700900123"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Mailbox:
    """What the SMTP server accepted; `refuse` makes it answer DATA with that code first."""

    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    refuse: list[str] = field(default_factory=list)

    def wait(self, count: int, seconds: float = 5) -> list[Received]:
        deadline = time.monotonic() + seconds
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.received)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.box.refuse:
            return self.box.refuse.pop(0)
        self.box.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 OK"


def free_port() -> int:
    """A loopback port nobody listens on (aiosmtpd's Controller cannot start on port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp(settings: Any) -> Iterator[Mailbox]:
    """A real SMTP server on loopback; EMAIL_* and the journal both point at it."""
    box = Mailbox("127.0.0.1", free_port())
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=box.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", box.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.JOURNAL_EMAIL = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": box.port,
    }
    settings.BRIDGE_FROM_ADDRESS = "clientwindow@bank.example"
    settings.BRIDGE_REPLY_DOMAIN = "reply.bank.example"
    settings.PORTAL_URL = "https://archive.bank.example"
    yield box
    controller.stop()


class _Meta(BaseHTTPRequestHandler):
    """POST /v25.0/<pnid>/messages and /v25.0/<pnid>/media as Meta answers them; any other
    POST (a Slack or Teams webhook) is kept and answered "ok"."""

    requests: list[tuple[str, dict[str, str], bytes]] = []
    plan: list[tuple[int, dict[str, Any]]] = []  # answers to give first, one per request
    counter = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        _Meta.requests.append((self.path, dict(self.headers), body))
        if _Meta.plan:
            status, answer = _Meta.plan.pop(0)
            return self._send(status, answer)
        if self.path.startswith("/v25.0/"):
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._send(401, {"error": {"message": "Invalid OAuth access token"}})
            _Meta.counter += 1
            if self.path.endswith("/media"):
                return self._send(200, {"id": f"{900000 + _Meta.counter}"})
            sent = json.loads(body)
            return self._send(
                200,
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": sent.get("to", ""), "wa_id": sent.get("to", "")}],
                    "messages": [{"id": f"wamid.OUT{_Meta.counter:06d}"}],
                },
            )
        return self._send(200, "ok")

    def _send(self, status: int, answer: Any) -> None:
        body = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Meta:
    url: str
    handler: type[_Meta]

    @property
    def requests(self) -> list[tuple[str, dict[str, str], bytes]]:
        return self.handler.requests

    def sends(self) -> list[dict[str, Any]]:
        return [json.loads(b) for p, _, b in self.requests if p.endswith("/messages")]

    def posts_to(self, path: str) -> list[Any]:
        return [json.loads(b) for p, _, b in self.requests if p == path]


@pytest.fixture
def meta(settings: Any, tmp_path: Any) -> Iterator[Meta]:
    _Meta.requests, _Meta.plan, _Meta.counter = [], [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Meta)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    settings.WHATSAPP_GRAPH_URL = f"{base}/v25.0"
    settings.BRIDGE_WEBHOOK_HOSTS = ["127.0.0.1"]
    settings.MEDIA_ROOT = tmp_path
    yield Meta(base, _Meta)
    server.shutdown()


@pytest.fixture(autouse=True)
def webhook_secret(settings: Any) -> None:
    settings.WHATSAPP_APP_SECRET = SECRET


@pytest.fixture
def channel(db: None) -> Channel:
    return Channel.objects.create(
        name="Private banking",
        phone_number_id=PNID,
        display_number="+44 20 7946 0000",
        access_token=TOKEN,
    )


def text_body(
    text: str,
    *,
    wamid: str,
    sender: str = CLIENT,
    name: str = "Jane Client",
    timestamp: int | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """A Cloud API webhook body with one client message (text unless `extra` says otherwise)."""
    message: dict[str, Any] = {
        "from": sender,
        "id": wamid,
        "timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "type": "text",
        "text": {"body": text},
    }
    if extra:
        message = {k: v for k, v in message.items() if k not in ("type", "text")} | extra
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "442079460000", "phone_number_id": PNID},
        "contacts": [{"profile": {"name": name}, "wa_id": sender}],
        "messages": [message],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


@pytest.fixture
def capture(client: Any) -> Any:
    """POST bodies to the real webhook and seal them; the conversation of the last one."""

    def post(*bodies: bytes) -> Conversation:
        for body in bodies:
            response = client.post(
                reverse("whatsapp_webhook"),
                body,
                content_type="application/json",
                HTTP_X_HUB_SIGNATURE_256=sign(body),
            )
            assert response.status_code == 200
        process_deliveries()
        return Message.objects.order_by("-entry_id").first().conversation  # type: ignore[union-attr]

    return post


@pytest.fixture
def route(channel: Channel) -> Route:
    return Route.objects.create(
        channel=channel,
        email_recipients=["rm@bank.example", "desk@bank.example"],
        journal_address="journal@archive.bank.example",
    )


# --- a staff reply email's conversation (tests/bridge/test_inbound*.py, test_tokens.py, …) ------


@pytest.fixture
def only_this_tests_emails(db: None) -> None:
    """tests/bridge/test_smoke.py commits a reply email from the gateway's thread, outside its
    test transaction, and leaves it pending: keep it out of these tests (rolled back after)."""
    InboundEmail.objects.filter(state="pending").update(state="ignored")


@pytest.fixture
def conversation(capture: Any, route: Route, smtp: Any, meta: Any) -> Conversation:
    return capture(text_body("Please sell 100 shares", wamid="wamid.IN1"))


@pytest.fixture
def address(conversation: Conversation) -> str:
    return reply_address(conversation.pk)
