"""Export tests read a small archive built through the real write path (tests/review/conftest:
the demo conversations, hostile input, media) plus one conversation written to exercise every
format: right-to-left scripts, CJK, emoji, a reply, a reaction, an edit, a deletion, a
document and an image with stored bytes, and delivery statuses."""

import hashlib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from archive.checkpoints import create_checkpoint
from archive.models import Checkpoint
from exports import pdf
from exports.scope import Scope
from exports.source import Source
from messaging import media, simulator
from messaging.graph import Download
from messaging.models import Conversation, Message
from tests.review.conftest import NOW, PNG, XSS, World, envelope, inbound, seal, world

__all__ = ["NOW", "PNG", "SAMPLES", "XSS", "World", "world"]

RICH_NUMBER = "971501234567"
RICH_NAME = "سارة العلي"
# Texts every format must carry through intact (the PDF tests extract them back).
SAMPLES = {
    "wamid.rich-ar": "مرحبا، هل وصل كشف الحساب؟",
    "wamid.rich-he": "שלום, אני צריכה את הדוח",
    "wamid.rich-ja": "ポートフォリオの見直しをお願いします",
    "wamid.rich-zh": "请把对账单发给我",
    "wamid.rich-emoji": "Thanks 👍🏽 see you Monday 🎉",
    "wamid.rich-formula": '=HYPERLINK("http://evil.example","click")',
}
EXPORT_ID = "0b7d6c1e-2f4a-4c59-9d1e-5a8f3b2c1d00"
RUN_AT = datetime.fromtimestamp(NOW + 3600, tz=UTC)


REAL_RENDERERS = pdf.Renderers


class WarmRenderers(pdf.Renderers):
    """pdf.Renderers whose processes serve the exports of many tests, as a pool serves the
    pieces of one export: starting a renderer (Python and WeasyPrint) costs more than most test
    transcripts take to lay out. A pool closed after an error is killed, as in production; tests
    of the pool itself take `real_renderers`."""

    idle: ClassVar[list["subprocess.Popen[str]"]] = []

    def __init__(self, count: int) -> None:
        reused = []
        while self.idle and len(reused) < count:
            proc = self.idle.pop()
            if proc.poll() is None:
                reused.append(proc)
            else:
                proc.wait()
        super().__init__(count - len(reused))  # starts the ones missing
        self.procs = reused + self.procs
        self.busy = [None] * count
        self.served = [0] * count

    def close(self, *, kill: bool = False) -> None:
        if kill or any(job is not None for job in self.busy):
            super().close(kill=kill)
        else:
            self.idle.extend(self.procs)

    @classmethod
    def close_idle(cls) -> None:
        pool = REAL_RENDERERS(0)
        pool.procs, cls.idle = cls.idle, []
        pool.close()


@pytest.fixture(scope="session")
def warm_renderer_pool() -> Iterator[None]:
    yield
    WarmRenderers.close_idle()


@pytest.fixture(autouse=True)
def warm_renderers(warm_renderer_pool: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "Renderers", WarmRenderers)


@pytest.fixture
def real_renderers(warm_renderers: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "Renderers", REAL_RENDERERS)


@dataclass
class Rich:
    conversation: Conversation

    def message(self, wamid: str) -> Message:
        return Message.objects.get(wamid=wamid)


@pytest.fixture
def rich(world: World) -> Rich:
    t = NOW + 200

    def text(wamid: str, body: str, at: int, **extra: object) -> bytes:
        message = {"id": wamid, "timestamp": str(at), "type": "text", "text": {"body": body}}
        return inbound(RICH_NUMBER, RICH_NAME, {**message, **extra})

    bodies = [text(w, body, t + n) for n, (w, body) in enumerate(SAMPLES.items())]
    bodies.append(
        text(
            "wamid.rich-reply",
            "Replying to my question",
            t + 20,
            context={"from": RICH_NUMBER, "id": "wamid.rich-ar"},
        )
    )
    echo = {
        "from": world.channel.display_number,
        "to": RICH_NUMBER,
        "id": "wamid.rich-out",
        "timestamp": str(t + 30),
        "type": "text",
        "text": {"body": "The statement was sent this morning."},
    }
    bodies.append(envelope("smb_message_echoes", {"message_echoes": [echo]}))
    statuses = [
        {
            "id": "wamid.rich-out",
            "status": s,
            "timestamp": str(t + 31 + i),
            "recipient_id": RICH_NUMBER,
        }
        for i, s in enumerate(("sent", "delivered", "read"))
    ]
    bodies.append(envelope("messages", {"statuses": statuses}))
    bodies.append(
        inbound(
            RICH_NUMBER,
            RICH_NAME,
            {
                "id": "wamid.rich-react",
                "timestamp": str(t + 40),
                "type": "reaction",
                "reaction": {"message_id": "wamid.rich-out", "emoji": "🙏"},
            },
        )
    )
    bodies.append(text("wamid.rich-typo", "I will wire 10,000 tomorow", t + 50))
    bodies.append(
        inbound(
            RICH_NUMBER,
            RICH_NAME,
            {
                "id": "wamid.rich-edit",
                "timestamp": str(t + 55),
                "type": "edit",
                "edit": {
                    "original_message_id": "wamid.rich-typo",
                    "message": {"type": "text", "text": {"body": "I will wire 10,000 tomorrow"}},
                },
            },
        )
    )
    bodies.append(text("wamid.rich-gone", "Buy before the announcement", t + 60))
    bodies.append(
        inbound(
            RICH_NUMBER,
            RICH_NAME,
            {
                "id": "wamid.rich-revoke",
                "timestamp": str(t + 65),
                "type": "revoke",
                "revoke": {"original_message_id": "wamid.rich-gone"},
            },
        )
    )
    bodies.append(
        inbound(
            RICH_NUMBER,
            RICH_NAME,
            {
                "id": "wamid.rich-doc",
                "timestamp": str(t + 70),
                "type": "document",
                "document": {
                    "id": "media-rich-doc",
                    "filename": "../../etc/passwd statement.pdf",
                    "mime_type": "application/pdf",
                    "caption": "signed form",
                },
            },
        )
    )
    bodies.append(
        inbound(
            RICH_NUMBER,
            RICH_NAME,
            {
                "id": "wamid.rich-img",
                "timestamp": str(t + 80),
                "type": "image",
                "image": {"id": "media-rich-img", "mime_type": "image/png", "caption": "cheque"},
            },
        )
    )
    seal(*bodies)
    pdf = b"%PDF-1.4\n% a tiny stand-in document\n"
    for wamid, media_id, content, mime in (
        ("wamid.rich-doc", "media-rich-doc", pdf, "application/pdf"),
        ("wamid.rich-img", "media-rich-img", PNG, "image/png"),
    ):
        message = Message.objects.get(wamid=wamid)
        digest = hashlib.sha256(content).hexdigest()
        media._store(message, media_id, Download(content, digest, mime), mime)
    return Rich(Conversation.objects.get(participant__wa_id=RICH_NUMBER))


@pytest.fixture
def make_source(world: World) -> Callable[..., Source]:
    """A Source as a job builds it: a checkpoint signed now, a fixed export id and run time."""

    def make(scope: Scope | None = None, export_id: str = EXPORT_ID) -> Source:
        create_checkpoint()
        checkpoint = Checkpoint.objects.order_by("-tree_size").first()
        assert checkpoint is not None
        return Source(
            export_id=export_id,
            created_at=RUN_AT,
            requester="auditor",
            scope=scope or Scope.for_conversation(world.amelia.pk),
            checkpoint=checkpoint,
        )

    return make


DEMO = simulator.DEMO_CLIENTS
