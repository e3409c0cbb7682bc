"""The PDF/A-3b transcript: what a regulator or a court reads, with its own proof embedded.

A cover (scope, requester, time, counts and the signed checkpoint with its verifier key), then
each conversation (participants, period) and every message with its time in UTC and the firm's
zone, sender, direction, delivery history, reply quote, reactions, edits, deletion, attachments
(images inline, files listed with their SHA-256) and its ledger seq and leaf hash. A message
imported from a phone export says so under its header, with the custodian, the file and lines,
the time as exported with the declared zone, and each import warning (review/provenance.py).
The manifest (every message's seq and leaf hash, and the checkpoint) is embedded as
`manifest.json`.

Speed and memory: WeasyPrint lays out about 10 dense pages a second per core and holds the
whole document while it does, so the messages are rendered as separate pieces of RENDER_CHUNK
messages by renderer processes (exports/pdf_render.py), one per core, while this process reads
the next chunk. "Page x of y" and the export id are not known to a piece, so once every piece
has its page count each gets a stamp: blank pages with that furniture in @page margin boxes,
laid over its pages, again in parallel. The pieces are then joined a piece at a time
(exports/pdf_join.py), which attaches the manifest as it reads it; the first stamp brings the
PDF/A-3b metadata. So memory stays at one piece per renderer whatever the transcript's length.
Last, once the renderers have ended, the joined file is signed (exports/pdf_sign.py: pyHanko
reads its cross-reference table, about 0.25 KB per object), and the cover says by whom, or
that it is not.

The same source gives the same rendered bytes apart from the export id and time: the PDF's
dates are the checkpoint's and its file identifier is a hash of the content. The signature
that follows them differs every time (its time, and its timestamps).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from archive.checkpoints import verifier_key_text
from archive.envelope import rfc3339
from messaging.media import open_media
from messaging.models import PHONE_EXPORT, Attachment, MediaFile
from review.transcript import Row

from . import pdf_sign
from .source import Part, Source
from .target import Target

TEMPLATE = "exports/transcript_pdf.html"
NAME = "transcript.pdf"
RENDER_CHUNK = 250  # messages per rendered piece: ~17 pages, a few MB of layout
WORKERS = max(1, min(4, len(os.sched_getaffinity(0))))  # renderers: one per core, 4 at most
RECYCLE_AFTER = 50  # jobs a renderer takes before a fresh one replaces it (~1 s to start)
INLINE = {"image/jpeg", "image/png", "image/gif", "image/webp"}  # what WeasyPrint can draw
ROOT = Path(__file__).resolve().parent.parent  # where `python -m exports.pdf_render` runs
MEDIA = "media"  # in the work directory: the images a renderer may read, named by SHA-256


def write(source: Source, target: Target, prefix: str = "") -> None:
    """Write `prefix + "transcript.pdf"`: the scope's transcript as PDF/A-3b."""
    signing = pdf_sign.load()  # before the work: a broken signing setup fails at once
    workers = max(1, min(WORKERS, -(-source.count() // RENDER_CHUNK)))
    with tempfile.TemporaryDirectory(prefix="cw-pdf-") as tmp:
        work = Path(tmp)
        with Renderers(workers) as pool:
            render(source, work, pool, signing)
        # The renderers have ended: signing (which reads the file's cross-reference table,
        # ~0.25 KB an object) does not add to their memory.
        done = work / NAME
        if signing is not None:
            done = work / f"signed-{NAME}"
            pdf_sign.sign(work / NAME, done, signing)
        with done.open("rb") as finished, target.open(prefix + NAME) as sink:
            shutil.copyfileobj(finished, sink, 1 << 20)


def render(source: Source, work: Path, pool: "Renderers", signing: pdf_sign.Signing | None) -> None:
    """Render the transcript in pieces, stamp them and join them into `work/transcript.pdf`."""
    for n, html in enumerate(pieces(source, source.parts(), work, signing=signing)):
        path = work / f"piece-{n:05d}.html"
        path.write_text(html, encoding="utf-8")
        pool.submit({"op": "body", "html": str(path), "pdf": f"{work}/body-{n:05d}.pdf",
                     "media": f"{work}/{MEDIA}"})  # fmt: skip
    bodies = pool.results()
    # Only now is the page count known: each piece gets its "page x of y" in parallel.
    total, first = sum(body["pages"] for body in bodies), 1
    for n, body in enumerate(bodies):
        path = work / f"stamp-{n:05d}.html"
        path.write_text(stamp_html(source, first, body["pages"], total), encoding="utf-8")
        pool.submit(_stamp_job(work, n))
        first += body["pages"]
    pool.results()
    created = source.checkpoint.created_at.astimezone(UTC).replace(microsecond=0)
    pool.run(
        {"op": "join", "pieces": [f"{work}/stamped-{n:05d}.pdf" for n in range(len(bodies))],
         "outlines": [body["outline"] for body in bodies],
         "furniture": f"{work}/stamp-00000.pdf", "out": f"{work}/{NAME}",
         "manifest": f"{work}/manifest.json", "created": created.isoformat()}
    )  # fmt: skip


def _stamp_job(work: Path, n: int) -> dict[str, Any]:
    return {"op": "stamp", "html": f"{work}/stamp-{n:05d}.html", "pdf": f"{work}/stamp-{n:05d}.pdf",
            "body": f"{work}/body-{n:05d}.pdf", "out": f"{work}/stamped-{n:05d}.pdf"}  # fmt: skip


def pieces(
    source: Source,
    parts: Iterable[Part],
    work: Path,
    size: int = 0,
    signing: pdf_sign.Signing | None = None,
) -> Iterator[str]:
    """The transcript's HTML in pieces of `size` messages (RENDER_CHUNK), the cover in the
    first, saying how `signing` will sign the file (or that nothing will). As the rows pass it
    writes `work/manifest.json` and copies the images to show into `work/media`, the only
    place the renderers read images from."""
    (work / MEDIA).mkdir()
    manifest = Manifest(work / "manifest.json", _manifest_head(source))
    cover = _cover(source, signing)
    for context in _contexts(parts, cover, work / MEDIA, manifest, size or RENDER_CHUNK):
        yield render_to_string(TEMPLATE, context)
    manifest.close()


def stamp_html(source: Source, first: int, pages: int, total: int) -> str:
    """Blank pages `first` to `first + pages - 1` of `total`, with the page furniture."""
    # Whole seconds: PDF/A wants the XMP dates equal to /Info's, which cannot hold fractions.
    created = source.checkpoint.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    context = {
        "pages": range(pages),
        "first": first,
        "of": css_string(f" of {total}"),
        "footer": css_string(f"ClientWindow evidence export {source.export_id}"),
        "title": f"WhatsApp transcript, export {source.export_id}",
        "created": created,
    }
    return render_to_string(f"{TEMPLATE}#stamp", context)


# --------------------------------------------------------------------------- what is shown


@dataclass
class Item:
    """One message as the PDF prints it: what the template cannot work out by itself."""

    row: Row
    name: str  # the sender: the client's profile name, or the firm's channel
    number: str  # the sender's number, in group conversations (else the header has it)
    when: str
    leaf: str
    delivery: str = ""  # the status history
    reactions: list[str] = field(default_factory=list)
    edits: list[tuple[str, str]] = field(default_factory=list)  # (when, text), original first
    deleted: str = ""  # when the sender deleted it
    quote: str = ""  # whose message it replies to, and when
    image: str = ""  # "media:<sha256>", served to the renderer from the job's media directory
    file_name: str = ""
    file: str = ""  # type, size and SHA-256 of a stored attachment
    source: str = ""  # "imported from a phone export · custodian …", for an imported message
    exported: str = ""  # the time the phone export printed, with the declared zone
    warnings: list[str] = field(default_factory=list)  # the importer's, as sentences
    also: list[str] = field(default_factory=list)  # "also in the phone export of …"


@dataclass
class Section:
    """A conversation's header (or its continuation) and its messages in one piece."""

    part: Part
    period: str
    continued: bool
    items: list[Item] = field(default_factory=list)


def when(moment: datetime | None) -> str:
    """UTC, then the firm's time zone when it differs: "2026-09-21 10:00:00 UTC (12:00:00 CEST)"."""
    if moment is None:
        return "no time recorded"
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    local = timezone.localtime(moment)
    if local.utcoffset() or local.tzname() not in ("UTC", "GMT"):
        shown = "%H:%M:%S %Z" if local.date() == utc.date() else "%Y-%m-%d %H:%M:%S %Z"
        text += f" ({local.strftime(shown)})"
    return text


def item(row: Row, part: Part, media: Path) -> Item:
    message, convo = row.message, part.conversation
    if message.direction == "out":
        name, number = convo.channel.name, ""
    else:
        name = row.sender_name or part.name or "Client"
        number = message.sender.wa_id if message.sender and convo.group_id else ""
    shown = Item(row, name, number, when(message.sent_at), bytes(message.entry.leaf_hash).hex())
    shown.delivery = _delivery(row)
    for reaction in row.reactions:
        who = "firm" if reaction.direction == "out" else "client"
        emoji = reaction.payload.get("reaction", {}).get("emoji", "")
        shown.reactions.append(f"{emoji} ({who}, {when(reaction.sent_at)})")
    if row.edits:
        shown.edits = [(f"original, {when(message.sent_at)}", message.text)]
        shown.edits += [(f"edited {when(edit.sent_at)}", edit.text) for edit in row.edits]
    if row.revoked is not None:
        shown.deleted = when(row.revoked.sent_at)
    if row.quoted is not None:
        who = "the firm" if row.quoted.direction == "out" else "the client"
        shown.quote = f"Reply to {who}, {when(row.quoted.sent_at)}"
    if row.attachment is not None:
        _attachment(shown, media)
    if row.imported is not None:
        entry = row.imported
        shown.source = entry.label[0].upper() + entry.label[1:]
        shown.exported = entry.exported_time
        shown.warnings = entry.warnings
        shown.file_name = shown.file_name or entry.attachment or ""
    shown.also = [e.also[0].upper() + e.also[1:] for e in row.also_in]
    return shown


def _delivery(row: Row) -> str:
    """The status history in UTC, with the date only where it is not the message's."""
    sent = row.message.sent_at
    day = sent.astimezone(UTC).date() if sent else None
    shown = []
    for event in row.statuses:
        at = event.occurred_at.astimezone(UTC)
        text = f"{event.status} {at:%H:%M:%S}" if at.date() == day else f"{event.status} {at:%F %T}"
        errors = event.payload.get("errors") if isinstance(event.payload, dict) else None
        if errors and isinstance(errors[0], dict) and errors[0].get("title"):
            text += f" ({errors[0]['title']})"
        shown.append(text)
    return ", ".join(shown)


def _attachment(shown: Item, media: Path) -> None:
    """The facts of a stored file, and its image inline when it is one that can be shown."""
    row = shown.row
    attachment, body = row.attachment, row.body if isinstance(row.body, dict) else {}
    stored = attachment.file if attachment is not None else None
    if attachment is None or attachment.outcome != Attachment.Outcome.STORED or stored is None:
        return
    shown.file_name = str(body.get("filename") or "")
    size = f"{stored.size:,} bytes"
    if stored.size >= 1024:
        size = f"{filesizeformat(stored.size)} ({size})"
    shown.file = f"{stored.mime_type} · {size} · SHA-256 {stored.sha256}"
    inline = row.message.type in ("image", "sticker") and stored.mime_type in INLINE
    if inline and _copy_media(stored, media):
        shown.image = f"media:{stored.sha256}"


def _copy_media(stored: MediaFile, media: Path) -> bool:
    """Copy stored bytes for the renderer, only when they still hash to their SHA-256."""
    path, part = media / stored.sha256, media / f"{stored.sha256}.part"
    if path.exists():
        return True
    digest = hashlib.sha256()
    with open_media(stored) as source, part.open("wb") as copy:
        while block := source.read(1 << 20):
            digest.update(block)
            copy.write(block)
    if digest.hexdigest() != stored.sha256:
        return False  # listed with its recorded hash but not shown: these are not those bytes
    part.replace(path)
    return True


# --------------------------------------------------------------------------- pieces


def _contexts(
    parts: Iterable[Part],
    cover: dict[str, Any],
    media: Path,
    manifest: "Manifest",
    size: int,
) -> Iterator[dict[str, Any]]:
    """Template contexts of at most `size` messages each, the cover in the first."""
    context: dict[str, Any] = {"cover": cover, "sections": []}
    count = 0
    for part in parts:
        period, section, shown = _period(part), None, 0
        for row in part.rows():
            manifest.add(row)
            if count == size:
                yield context
                context, count, section = {"cover": None, "sections": []}, 0, None
            if section is None:
                section = Section(part, period, continued=shown > 0)
                context["sections"].append(section)
            section.items.append(item(row, part, media))
            count, shown = count + 1, shown + 1
    yield context


def _period(part: Part) -> str:
    return f"{part.count:,} messages, {when(part.first_at)} to {when(part.last_at)}"


def _cover(source: Source, signing: pdf_sign.Signing | None) -> dict[str, Any]:
    checkpoint = source.checkpoint
    return {
        "export_id": source.export_id,
        "scope": source.scope.label(),
        "requester": source.requester,
        "created": when(source.created_at),
        "time_zone": timezone.get_current_timezone_name(),
        "conversations": source.conversation_count(),
        "messages": source.count(),
        "imported": source.messages().filter(source=PHONE_EXPORT).count(),
        "tree_size": checkpoint.tree_size,
        "root": bytes(checkpoint.root).hex(),
        "signed": when(checkpoint.created_at),
        "note": checkpoint.note,
        "verifier_key": verifier_key_text(),
        "redacted": source.redaction is not None,
        "signature": pdf_sign.describe(signing),
    }


def css_string(text: str) -> SafeString:
    """`text` as a quoted CSS string that nothing in it can end (nor the <style> element)."""
    escaped = "".join(c if c.isalnum() or c in " .,:;-_+()/@" else f"\\{ord(c):x} " for c in text)
    return mark_safe(f'"{escaped}"')  # noqa: S308  every other character is escaped above


# --------------------------------------------------------------------------- manifest


def _manifest_head(source: Source) -> dict[str, Any]:
    checkpoint = source.checkpoint
    return {
        "checkpoint": {
            "note": checkpoint.note,
            "root": bytes(checkpoint.root).hex(),
            "tree_size": checkpoint.tree_size,
        },
        "export_id": source.export_id,
        "scope": source.scope.to_json(),
        "verifier_key": verifier_key_text(),
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Manifest:
    """manifest.json written as the rows pass: `json.dumps(…, sort_keys=True,
    separators=(",", ":"))` of the whole, without holding every message."""

    def __init__(self, path: Path, head: dict[str, Any]) -> None:
        self.file: IO[str] = path.open("w", encoding="ascii")
        self.after = {k: v for k, v in head.items() if k > "messages"}
        before = [f"{_dumps(k)}:{_dumps(v)}" for k, v in sorted(head.items()) if k < "messages"]
        self.file.write("{" + "".join(f"{entry}," for entry in before) + '"messages":[')
        self.first = True

    def add(self, row: Row) -> None:
        message = row.message
        entry: dict[str, Any] = {
            "conversation": message.conversation_id,
            "leaf_hash": bytes(message.entry.leaf_hash).hex(),
            "sent_at": rfc3339(message.sent_at) if message.sent_at else None,
            "seq": message.entry_id,
            "wamid": message.wamid,
        }
        attachment = row.attachment
        if attachment is not None and attachment.file is not None:
            entry["media_sha256"] = attachment.file.sha256
        if row.imported is not None:  # only then: captured messages' lines stay as they were
            entry["imported"] = {
                "custodian": row.imported.custodian,
                "file": row.imported.file_name,
                "lines": [row.imported.first_line, row.imported.last_line],
            }
        self.file.write(("" if self.first else ",") + _dumps(entry))
        self.first = False

    def close(self) -> None:
        rest = "".join(f",{_dumps(k)}:{_dumps(v)}" for k, v in sorted(self.after.items()))
        self.file.write("]" + rest + "}")
        self.file.close()


# --------------------------------------------------------------------------- renderers


class Renderers:
    """`python -m exports.pdf_render` processes, each given one job at a time in turn.

    Subprocesses, not multiprocessing: the export job runs in a django-q2 worker, a daemonic
    process, which multiprocessing forbids to have children. Their stderr is this process's
    (WeasyPrint's warnings reach the worker's log); the export's error text only ever says
    which job failed and how, never what a renderer printed.

    A renderer is replaced by a fresh one after RECYCLE_AFTER jobs: WeasyPrint's process grows
    with every document it lays out (its caches, and the Python heap, which does not shrink),
    by ~27 MB over 50 pieces of 250 messages (115 -> 142 MB RSS), so a long transcript would
    otherwise grow its renderers.
    """

    def __init__(self, count: int) -> None:
        self.procs = [self._start() for _ in range(count)]
        self.busy: list[int | None] = [None] * count  # the job index each one is working on
        self.served = [0] * count  # jobs each one has been given since it started
        self.answers: dict[int, dict[str, Any]] = {}
        self.jobs = 0

    @staticmethod
    def _start() -> "subprocess.Popen[str]":
        return subprocess.Popen(
            [sys.executable, "-m", "exports.pdf_render"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def __enter__(self) -> "Renderers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(kill=exc[0] is not None)

    def submit(self, job: dict[str, Any]) -> None:
        """Queue a job on the next renderer in turn, first waiting for its previous one."""
        slot = self.jobs % len(self.procs)
        self._collect(slot)
        if self.served[slot] >= RECYCLE_AFTER:
            self._stop(self.procs[slot])
            self.procs[slot], self.served[slot] = self._start(), 0
        proc = self.procs[slot]
        self.served[slot] += 1
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job) + "\n")
        proc.stdin.flush()
        self.busy[slot] = self.jobs
        self.jobs += 1

    def results(self) -> list[dict[str, Any]]:
        """The answers to the jobs submitted since the last call, in order."""
        for slot in range(len(self.procs)):
            self._collect(slot)
        answers = [self.answers.pop(n) for n in range(self.jobs)]
        self.jobs = 0
        return answers

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """One job, after every job before it has finished."""
        self.results()
        self.submit(job)
        return self.results()[0]

    def _collect(self, slot: int) -> None:
        job = self.busy[slot]
        if job is None:
            return
        stdout = self.procs[slot].stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            code = self.procs[slot].wait()
            raise RuntimeError(f"the PDF renderer stopped (exit code {code})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the PDF renderer failed: {answer['error']}")
        self.answers[job] = answer
        self.busy[slot] = None

    def close(self, *, kill: bool = False) -> None:
        for proc in self.procs:
            if kill:
                proc.kill()
            elif proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            self._stop(proc)

    @staticmethod
    def _stop(proc: "subprocess.Popen[str]") -> None:
        if proc.stdin is not None:
            proc.stdin.close()  # its end of input: it exits once its last answer is read
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
