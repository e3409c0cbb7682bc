"""PDF transcript benchmark: exports.pdf.write on one conversation of 1,000 and of 10,000
messages, beside WeasyPrint rendering the same HTML alone.

Data, built through the real write path: webhook deliveries of 50 messages sealed by
messaging.sequencer.process_deliveries, a third of them sent by the firm (with sent, delivered
and read statuses), texts of 5-60 words with some emoji and Arabic, and an image every 50
messages (a distinct 640x480 JPEG of ~60 KB each) stored by the media module.

- ours: exports.pdf.write into a DirectoryTarget, run in a forked *daemonic* process as
  django-q2 runs jobs: wall time, CPU time (that process and its renderers), the peak RSS the
  writer process gained, and the peak RSS of its renderer processes.
- alone (the ceiling): the same transcript's HTML as one document (exports.pdf.pieces in one
  piece) rendered to PDF/A-3b by one warmed-up renderer process: WeasyPrint alone, without
  the database, the templates, the processes' start-up, the stamps or the join. Its wall and
  CPU time and peak RSS; "HTML" is what making that HTML took this process.
- export peak: the memory of the writer process and its renderers together (their PSS, so the
  libraries and fonts they share count once), sampled every 50 ms: the writer and its
  renderers need not peak at the same moment. The writer is forked from this process, and a
  fork shares the memory of the fork's parent, which grows with each size measured before: for
  the memory figures of one size, run it alone (BENCH_PDF_SIZES=60000). "renderers peak" is
  their ru_maxrss, which on Linux starts at the RSS of the process that started them.

Ratios are ours / alone: on an idle 2-core machine the wall ratio is what parallel rendering
buys back from our overhead, which the CPU ratio shows. The load average is printed because
this machine is shared. Nothing asserts on speed; the page count and manifest are checked.
BENCH_PDF_SIZES (default "1000,10000") picks the conversation sizes, BENCH_PDF_CEILING_MAX
(default 10000) the largest one whose ceiling is measured (10,000 takes minutes alone).
"""

import hashlib
import io
import json
import multiprocessing
import os
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from PIL import Image, ImageDraw
from pypdf import PdfReader

from archive.checkpoints import create_checkpoint
from archive.models import Checkpoint
from exports import pdf
from exports.scope import Scope
from exports.source import Source
from exports.target import DirectoryTarget
from messaging import media, simulator
from messaging.graph import Download
from messaging.models import Channel, Conversation, Delivery, Message
from messaging.sequencer import process_deliveries
from tests.performance.conftest import Figure, record, say, seconds, table
from tests.performance.test_bench_capture import TreePeak

SIZES = [int(n) for n in os.environ.get("BENCH_PDF_SIZES", "1000,10000").split(",")]
CEILING_MAX = int(os.environ.get("BENCH_PDF_CEILING_MAX", "10000"))
T0 = 1_790_000_000
PER_DELIVERY = 50
IMAGE_EVERY = 50
VOCABULARY = (
    "statement portfolio please review the wire transfer tomorrow confirm account balance "
    "meeting monday thanks bond fund allocation risk profile signed form quarterly report "
    "👍 🎉 مرحبا الحساب"
)
WORDS = VOCABULARY.split()


def envelope(field: str, value: dict[str, Any]) -> bytes:
    return simulator._envelope(field, value)


def jpeg(n: int) -> bytes:
    image = Image.new("RGB", (640, 480), (40 + n % 200, 90, 160))
    draw = ImageDraw.Draw(image)
    for y in range(0, 480, 24):
        draw.line((0, y, 640, (y * 7 + n) % 480), fill=(230, 230 - y % 200, 60), width=3)
    draw.text((20, 20), f"cheque {n}", fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def message(number: str, channel: Channel, i: int, rng: random.Random) -> tuple[str, Any]:
    """(webhook field, item) for message i: an image every 50, else one in three from the firm."""
    item = {"id": f"wamid.bench-{number}-{i:06d}", "timestamp": str(T0 + i * 60)}
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60)))
    if i % IMAGE_EVERY == 0:
        image = {"id": f"media-{number}-{i}", "mime_type": "image/jpeg", "caption": text[:40]}
        return "messages", {**item, "from": number, "type": "image", "image": image}
    body = {"type": "text", "text": {"body": text}}
    if i % 3 == 0:
        firm = {"from": channel.display_number, "to": number}
        return "smb_message_echoes", {**item, **firm, **body}
    return "messages", {**item, "from": number, **body}


def statuses(echoes: list[Any], number: str) -> list[dict[str, str]]:
    """Sent, delivered and read, a second apart, for each message from the firm."""
    return [
        {"id": m["id"], "status": s, "timestamp": str(int(m["timestamp"]) + k + 1),
         "recipient_id": number}
        for m in echoes
        for k, s in enumerate(("sent", "delivered", "read"))
    ]  # fmt: skip


def build(channel: Channel, number: str, count: int) -> Conversation:
    """A conversation of `count` messages, sealed as deliveries of 50, with its images stored."""
    rng = random.Random(count)
    contact = {"profile": {"name": f"Client {number[-4:]}"}, "wa_id": number}
    for start in range(0, count, PER_DELIVERY):
        batch = range(start, min(count, start + PER_DELIVERY))
        items = [message(number, channel, i, rng) for i in batch]
        inbound = [m for field, m in items if field == "messages"]
        echoes = [m for field, m in items if field == "smb_message_echoes"]
        for body in (
            envelope("messages", {"contacts": [contact], "messages": inbound}),
            envelope("smb_message_echoes", {"message_echoes": echoes}),
            envelope("messages", {"statuses": statuses(echoes, number)}),
        ):
            Delivery.objects.create(body=body, headers={})
    process_deliveries()
    for n, image in enumerate(Message.objects.filter(type="image", wamid__contains=number)):
        content = jpeg(n)
        fetched = Download(content, hashlib.sha256(content).hexdigest(), "image/jpeg")
        media._store(image, image.payload["image"]["id"], fetched, "image/jpeg")
    return Conversation.objects.get(participant__wa_id=number)


@pytest.fixture
def conversations(
    empty_ledger: None, settings: Any, tmp_path: Path
) -> Iterator[dict[int, Conversation]]:
    settings.MEDIA_ROOT = tmp_path / "media"
    demo = simulator.DEMO_CHANNEL  # the channel simulator._envelope addresses
    channel = Channel.objects.create(
        name=demo["name"],
        phone_number_id=demo["phone_number_id"],
        display_number=demo["display_number"],
    )
    started = time.perf_counter()
    built = {n: build(channel, f"4477009{n:05d}", n) for n in SIZES}
    create_checkpoint()
    elapsed = seconds(time.perf_counter() - started)
    say(f"built {sum(SIZES):,} messages through the sequencer in {elapsed}")
    yield built


def source_for(conversation: Conversation) -> Source:
    checkpoint = Checkpoint.objects.order_by("-tree_size").first()
    assert checkpoint is not None
    return Source(
        export_id="6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b",
        created_at=datetime.fromtimestamp(T0 + 10**6, tz=UTC),
        requester="bench",
        scope=Scope.for_conversation(conversation.pk),
        checkpoint=checkpoint,
    )


def vm(field: str) -> int:
    """A /proc/self/status figure in kB (VmRSS now, VmHWM the peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _export(conversation_pk: int, directory: str, answers: Any) -> None:
    """In the forked daemonic process: one export, timed, with its CPU and memory."""
    source = source_for(Conversation.objects.get(pk=conversation_pk))
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before, started, cpu_before = vm("VmRSS"), time.perf_counter(), cpu(resource.RUSAGE_SELF)
    pdf.write(source, DirectoryTarget(Path(directory)))
    answers.put(
        {
            "seconds": time.perf_counter() - started,
            "writer_cpu": cpu(resource.RUSAGE_SELF) - cpu_before,
            "renderers_cpu": cpu(resource.RUSAGE_CHILDREN),
            "gained_kb": vm("VmHWM") - before,
            "renderers_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        }
    )
    connections.close_all()


def ours(conversation: Conversation, directory: Path) -> dict[str, Any]:
    connections.close_all()  # the forked process opens its own connection
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    job = context.Process(
        target=_export, args=(conversation.pk, str(directory), answers), daemon=True
    )
    job.start()
    # The whole export's memory, renderers included, sampled: the writer's own peak and the
    # renderers' do not add up, as they need not peak at once.
    with TreePeak(job.pid or 0) as peak:
        result: dict[str, Any] = answers.get(timeout=1800)
    job.join(timeout=60)
    assert job.exitcode == 0
    return {**result, "tree_kb": peak.kb}


def ceiling(conversation: Conversation, work: Path) -> dict[str, Any]:
    """WeasyPrint alone on the same transcript in one piece, in a warmed-up renderer; also
    how long this process takes to make that HTML (database and templates)."""
    source = source_for(conversation)
    work.mkdir()
    started = time.perf_counter()
    (html,) = pdf.pieces(source, list(source.parts()), work, size=10**9)
    html_seconds = time.perf_counter() - started
    (work / "whole.html").write_text(html, encoding="utf-8")
    (work / "warm.html").write_text("<p>warm-up</p>", encoding="utf-8")
    with pdf.Renderers(1) as renderer:
        renderer.run({"op": "body", "html": f"{work}/warm.html", "pdf": f"{work}/warm.pdf"})
        job = {"op": "body", "html": f"{work}/whole.html", "pdf": f"{work}/whole.pdf"}
        answer = renderer.run({**job, "media": f"{work}/media"})
    return {**answer, "html_seconds": html_seconds}


def mb(kb: float) -> str:
    return f"{kb / 1024:,.0f} MB"


def measure(count: int, conversation: Conversation) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="bench-pdf-") as tmp:
        work = Path(tmp)
        (work / "out").mkdir()
        result = ours(conversation, work / "out")
        transcript = work / "out" / "transcript.pdf"
        reader = PdfReader(transcript)
        pages, size = len(reader.pages), transcript.stat().st_size
        assert len(json.loads(reader.attachments["manifest.json"][0])["messages"]) == count
        assert f"page {pages} of {pages}" in reader.pages[-1].extract_text()
        objects = int(reader.trailer["/Size"])  # what signing reads: ~0.25 KB each in pyHanko
        say(f"{count:,} messages, {pages} pages, {objects:,} objects: {seconds(result['seconds'])}")
        alone = ceiling(conversation, work / "ceiling") if count <= CEILING_MAX else {}
    record(
        Figure(
            f"PDF transcript, {count:,} messages",
            result["seconds"],
            "s",
            ceiling=alone.get("seconds"),
            ceiling_label="WeasyPrint alone",
            reference="21 s, 145 pages" if count == 1000 else "250 s, 1,467 pages, 1 GB",
            target=10.0 if count == 1000 else None,
        )
    )
    ours_cpu = result["writer_cpu"] + result["renderers_cpu"]
    return [
        f"{count:,}",
        str(pages),
        seconds(result["seconds"]),
        seconds(ours_cpu),
        seconds(alone["seconds"]) if alone else "-",
        seconds(alone["cpu_seconds"]) if alone else "-",
        f"{result['seconds'] / alone['seconds']:.2f}" if alone else "-",
        f"{ours_cpu / alone['cpu_seconds']:.2f}" if alone else "-",
        seconds(alone["html_seconds"]) if alone else "-",
        mb(result["gained_kb"]),
        mb(result["renderers_kb"]),
        mb(result["tree_kb"]),
        mb(alone["peak_rss_kb"]) if alone else "-",
        mb(size / 1024),
    ]


def test_bench_pdf_transcript(conversations: dict[int, Conversation]) -> None:
    rows = [measure(count, conversation) for count, conversation in conversations.items()]
    headers = [
        *("messages", "pages", "ours", "ours CPU", "alone", "alone CPU", "wall ratio"),
        *("CPU ratio", "HTML", "writer +RSS", "renderers peak", "export peak", "alone peak"),
        "size",
    ]
    title = (
        f"== PDF transcript: {pdf.WORKERS} renderers, pieces of {pdf.RENDER_CHUNK} messages;"
        f" ratio = ours / WeasyPrint alone; load average {os.getloadavg()[0]:.1f}"
    )
    say(table(headers, rows, title=title))
