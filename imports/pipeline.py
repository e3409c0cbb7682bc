"""The import of a phone "Export chat" file: the one domain path the portal, the command and the
tasks share (docs/IMPORTS.md).

`upload()` stores the file byte for byte and seals it before anything reads it; `analyse()` parses
it once without sealing anything and builds the preview (refusing bad input here, so that nothing
but the upload is ever sealed for it); `confirm()` records the user's choices (date order, authors,
conversation) and seals `import.started`; `run_import()` seals the entries batch by batch
(imports/sealing.py), each batch one transaction that also moves the job's cursor, so a run that
dies resumes where the last committed batch ended and every entry is sealed exactly once.
"""

import json
import logging
import re
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django_q.tasks import async_task

from archive import ledger
from archive.envelope import Fact
from messaging import hooks
from messaging.models import (
    Channel,
    ChatExport,
    Conversation,
    MediaFile,
    Participant,
    ParticipantProfile,
)
from review.provenance import EXPORT_KEY_PREFIX

from . import chat_names, matching, sealing, storage
from .models import ImportJob, ImportProblem
from .parsing import PARSER_VERSION, Detected, Entry, ExportError, ExportFile, detect, parse, shadow

logger = logging.getLogger(__name__)
State = ImportJob.State
ORDERS = ("dmy", "mdy", "ymd")
SHOWN = 3  # entries at each end of the preview
SHOWN_PROBLEMS = 200  # problems kept in the preview (all of them are ImportProblem rows)
MAX_ENTRY_BYTES = 512 * 1024  # a longer body cannot be indexed for search: refused in analysis
IMPORT_LOCK = 0x436C5769  # pg_try_advisory_lock(IMPORT_LOCK, job id): one run per job
STALLED = timedelta(minutes=5)
_DIGITS = re.compile(r"\D")


class ImportRefused(Exception):
    """An upload ClientWindow will not take (over the size cap, an unknown time zone, no
    custodian): raised before anything is stored."""


@dataclass
class Preview:
    """What the user confirms: the detected format, the counts, the first and last entries, the
    authors and every warning (also what `import_chat --dry-run` prints)."""

    file_name: str
    detected: dict[str, Any] = field(default_factory=dict)
    date_order: str | None = None
    date_order_evidence: str = ""
    date_order_tentative: bool = False  # undecidable: the entries shown are read as date_order
    entries: int = 0
    lines: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    first: list[dict[str, Any]] = field(default_factory=list)
    last: list[dict[str, Any]] = field(default_factory=list)
    authors: list[dict[str, Any]] = field(default_factory=list)
    chat_name: str = ""
    one_to_one: bool = False
    warnings: int = 0
    problems: list[tuple[int | None, str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)
    error: str = ""
    error_line: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = [list(p) for p in self.problems[:SHOWN_PROBLEMS]]
        return data


# --- upload ------------------------------------------------------------------------------------


def check_time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ImportRefused(f"{name!r} is not a time zone (an IANA name: Europe/London)") from exc


def upload(
    *,
    channel: Channel,
    custodian: str,
    time_zone: str,
    file_name: str,
    stream: IO[bytes],
    uploaded_by: AbstractBaseUser | None,
    inline: bool = False,
) -> ImportJob:
    """Store the upload (streamed to a temporary file under CHAT_IMPORT_MAX_BYTES, hashed as it
    streams) as a MediaFile and seal it (`media.file`, then `chat.export`) before parsing; the
    job starts in `analysing`, and `analyse()` is queued after the commit (run here if inline).
    Raises ImportRefused for an upload over the cap or an unknown time zone."""
    check_time_zone(time_zone)
    custodian = custodian.strip()
    if not custodian:
        raise ImportRefused("name the custodian: the employee whose phone the export came from")
    file_name = PurePosixPath(file_name.replace("\\", "/")).name[:255] or "chat.txt"
    user = User.objects.filter(pk=uploaded_by.pk).first() if uploaded_by is not None else None
    new_files: list[MediaFile] = []
    with transaction.atomic():
        try:
            media, sha256, size = storage.store_upload(stream, new_files.append)
        except storage.TooLarge:
            limit = settings.CHAT_IMPORT_MAX_BYTES
            raise ImportRefused(
                f"{file_name}: larger than the {limit:,} bytes an import may be"
                " (CHAT_IMPORT_MAX_BYTES); nothing was stored"
            ) from None
        fact = Fact(
            "chat.export",
            {
                "phone_number_id": channel.phone_number_id,
                "sha256": sha256,
                "size": size,
                "time_zone": time_zone,
                "media_seq": media.entry_id,
            },
            {
                "file_name": file_name.encode(),
                "custodian": custodian.encode(),
                "uploaded_by": (user.get_username() if user else "").encode(),
            },
        )
        (entry,) = ledger.append([fact])
        export = ChatExport.objects.create(
            channel=channel,
            file=media,
            file_name=file_name,
            sha256=sha256,
            size=size,
            custodian=custodian[:200],
            uploaded_by=user,
            uploaded_at=entry.sealed_at,
            time_zone=time_zone,
            entry=entry,
        )
        export.entry = entry
        hooks.sealed([*new_files, export], [])  # retention/assign.py
        job = ImportJob.objects.create(export=export, created_by=user)
        if not inline:
            transaction.on_commit(lambda: async_task("imports.tasks.analyse_task", job.pk))
    if inline:
        return analyse(job.pk)
    return job


# --- analysis ----------------------------------------------------------------------------------


def analyse(job_id: int) -> ImportJob:
    """Read the stored upload back, detect and parse it in full without sealing anything:
    preview, problems, authors, attachments. Ends in refused (the parser's ExportError, with
    the line), needs_date_order, or ready; or done at once for a file already imported."""
    job = ImportJob.objects.select_related("export__file", "export__channel").get(pk=job_id)
    if job.state != State.ANALYSING:
        return job  # a task run twice does nothing the second time
    if _identical(job):
        return job
    preview = _preview_of(job.export)
    _guess_participants(preview, job.export.channel)
    _store_analysis(job, preview)
    return job


def _preview_of(export: ChatExport, date_order: str | None = None) -> Preview:
    """The preview of a stored upload (read back from the records store)."""
    with storage.local_copy(export.file, export.file_name) as path:
        return preview_file(
            path,
            export.file_name,
            time_zone=export.time_zone,
            date_order=date_order,
            custodian=export.custodian,
        )


def preview_file(
    path: str | Path,
    file_name: str,
    *,
    time_zone: str,
    date_order: str | None = None,
    custodian: str = "",
) -> Preview:
    """The preview of a local file, storing nothing (`import_chat --dry-run`); bad input ends in
    `error` (with `error_line` when known), never in an exception."""
    zone = check_time_zone(time_zone)
    preview = Preview(file_name=file_name)
    try:
        with ExportFile.open(path, file_name) as export:
            detected = detect(export)
            preview.detected = asdict(detected)
            preview.lines = detected.lines
            preview.date_order_evidence = detected.order_evidence
            orders = [date_order] if date_order else _orders(detected)
            for number, order in enumerate(orders):
                try:
                    _scan(export, detected, order, zone, custodian, preview)
                    break
                except ExportError:
                    if number == len(orders) - 1:
                        raise
                    preview = _fresh(preview)
            preview.date_order_tentative = not date_order and detected.date_order is None
    except ExportError as exc:
        preview.error, preview.error_line = str(exc), exc.line
    return preview


def _orders(detected: Detected) -> list[str]:
    if detected.date_order:
        return [detected.date_order]
    return list(ORDERS)  # undecidable: shown as the first reading that holds


def _fresh(preview: Preview) -> Preview:
    return Preview(
        file_name=preview.file_name,
        detected=preview.detected,
        lines=preview.lines,
        date_order_evidence=preview.date_order_evidence,
    )


def _scan(
    export: ExportFile,
    detected: Detected,
    order: str,
    zone: ZoneInfo,
    custodian: str,
    preview: Preview,
) -> None:
    """One full pass: counts, ends, authors, attachments, problems. ExportError for an entry the
    archive cannot take (so that the run, which parses the same way, never meets one)."""
    preview.date_order = order
    kinds: Counter[str] = Counter()
    authors: Counter[str] = Counter()
    first: list[dict[str, Any]] = []
    last: deque[dict[str, Any]] = deque(maxlen=SHOWN)
    referenced: dict[str, int] = {}
    problems = preview.problems
    members = {PurePosixPath(m.name).name: m.name for m in export.members}
    group_name: str | None = None
    for entry in parse(export, detected, order):
        _check_entry(export.file_name, entry)
        kinds[entry.kind] += 1
        if entry.kind == "system":
            group_name = chat_names.subject(entry.text) or group_name
        if entry.author is not None:
            authors[entry.author] += 1
        shown = _shown(entry)
        if len(first) < SHOWN:
            first.append(shown)
        last.append(shown)
        for flag in entry.flags:
            problems.append((entry.first_line, flag, FLAG_TEXT.get(flag, flag)))
        _instant, dst = matching.aware(entry.local_time, zone)
        if dst:
            problems.append((entry.first_line, dst, FLAG_TEXT[dst]))
        if entry.attachment:
            name = PurePosixPath(entry.attachment.replace("\\", "/")).name
            referenced.setdefault(name, entry.first_line)
            if name not in members:
                problems.append(
                    (entry.first_line, "missing-attachment", f"{entry.attachment}: {MISSING}")
                )
                preview.missing.append(entry.attachment)
    preview.entries = sum(kinds.values())
    preview.counts = dict(kinds)
    preview.first, preview.last = first, list(last)
    preview.unreferenced = sorted(n for b, n in members.items() if b not in referenced)
    for name in preview.unreferenced:
        problems.append((None, "unreferenced-member", f"{name}: in the zip but not referenced"))
    if detected.unmatched_shapes:
        problems.append(
            (
                None,
                "other-shape",
                f"{detected.unmatched_shapes} lines look like message headers of another"
                " format; they are kept as text of the message before them",
            )
        )
    if detected.date_order is None:
        problems.append((None, "date-order", f"date order undecided: {detected.order_evidence}"))
    # the export's own file name names the chat; else the group's latest subject; else the upload
    preview.chat_name = export.chat_name or group_name or Path(export.file_name).stem
    wanted = shadow(custodian).casefold()
    preview.authors = [
        {
            "author": author,
            "count": count,
            "guess": "custodian" if wanted and shadow(author).casefold() == wanted else None,
        }
        for author, count in authors.most_common()
    ]
    preview.one_to_one = len(authors) <= 2 and group_name is None
    preview.warnings = len(problems)


MISSING = "referenced in the export but not in the zip"
FLAG_TEXT = {
    "impossible-time": "a time that cannot be (e.g. 13:05 PM): read as best it can be",
    "system-guess": "classified as a system line by its structure",
    "other-shape": "a header of another format inside this message, kept as its text",
    "date-invalid": "a date that is not valid under the chosen date order",
    "dst-gap": "this local time does not exist in the time zone (clocks went forward):"
    " shifted forward",
    "dst-ambiguous": "this local time occurs twice in the time zone (clocks went back):"
    " read as the first",
}


def _check_entry(file_name: str, entry: Entry) -> None:
    """What PostgreSQL or the search index could not hold is refused here, before any sealing."""
    for value in (entry.text, entry.author or ""):
        if "\x00" in value:
            raise ExportError(
                file_name, "a NUL character, which no export contains", entry.first_line
            )
    size = len(entry.text.encode("utf-8"))
    if size > MAX_ENTRY_BYTES:
        raise ExportError(
            file_name,
            f"a message of {size:,} bytes (the archive takes at most {MAX_ENTRY_BYTES:,})",
            entry.first_line,
        )


def _shown(entry: Entry) -> dict[str, Any]:
    return {
        "line": entry.first_line,
        "time": entry.local_time.isoformat(),
        "author": entry.author,
        "kind": entry.kind,
        "text": entry.text[:200],
    }


def _guess_participants(preview: Preview, channel: Channel) -> None:
    """An author written as a number, or by a name a participant showed, is guessed to be them."""
    unguessed = [a for a in preview.authors if a["guess"] is None]
    numbers = {a["author"]: _DIGITS.sub("", a["author"]) for a in unguessed}
    numbers = {a: n for a, n in numbers.items() if len(n) >= 6 and a.strip().startswith("+")}
    by_number = dict(
        Participant.objects.filter(wa_id__in=set(numbers.values())).values_list("wa_id", "pk")
    )
    names = [a["author"] for a in unguessed if a["author"] not in numbers]
    by_name = dict(
        ParticipantProfile.objects.filter(
            name__in=names, participant__conversation__channel=channel
        ).values_list("name", "participant_id")
    )
    for author in unguessed:
        number = numbers.get(author["author"])
        author["guess"] = by_number.get(number) if number else by_name.get(author["author"])


def _store_analysis(job: ImportJob, preview: Preview) -> None:
    with transaction.atomic():
        job.preview = preview.to_json()
        job.detected = preview.detected
        job.lines_total = preview.lines
        job.entries_total = preview.entries
        job.chat_name = preview.chat_name[:250]
        job.one_to_one = preview.one_to_one
        job.date_order_evidence = preview.date_order_evidence
        if preview.error:
            job.state, job.error = State.REFUSED, preview.error
            problems = [(preview.error_line, "refused", preview.error)]
        else:
            job.date_order = "" if preview.date_order_tentative else preview.date_order or ""
            job.state = State.NEEDS_DATE_ORDER if preview.date_order_tentative else State.READY
            problems = preview.problems
        job.save()
        _replace_problems(job, problems)


def _identical(job: ImportJob) -> bool:
    """The same bytes already imported (or importing) into this channel: nothing is imported
    again; the upload itself stays stored and sealed, for the record."""
    twin = (
        ImportJob.objects.filter(
            export__sha256=job.export.sha256,
            export__channel_id=job.export.channel_id,
            state__in=[State.QUEUED, State.RUNNING, State.CANCELLING, State.DONE],
        )
        .exclude(pk=job.pk)
        .select_related("export", "created_by")
        .order_by("pk")
        .first()
    )
    if twin is None:
        return False
    who = twin.created_by.get_username() if twin.created_by else "the command line"
    text = (
        f"identical to export #{twin.export_id}, imported {twin.export.uploaded_at:%Y-%m-%d}"
        f" by {who}: nothing was imported again"
    )
    job.state, job.identical_to, job.finished_at = State.DONE, twin, timezone.now()
    job.preview = {**job.preview, "identical": text}
    job.counts = {"created": 0, "linked": 0, "captured": 0, "identical": 1}
    job.save()
    ImportProblem.objects.create(job=job, line=None, kind="identical", problem=text)
    return True


# --- confirmation ------------------------------------------------------------------------------


def confirm(
    job: ImportJob,
    *,
    date_order: str,
    mapping: dict[str, dict[str, Any]],
    chat_name: str,
    one_to_one: bool,
    user: AbstractBaseUser | None,
    queue: bool = True,
) -> ImportJob:
    """Record the user's choices and seal `import.started`; the job is queued for run_import.

    mapping: {author: {"as": "custodian"} | {"as": "participant", "id": int}
              | {"as": "number", "number": "+44…"} | {"as": "unknown"}}
    An order other than the one the preview was read with is checked by a full parse first
    (ValidationError with the file's line if the file cannot be read that way)."""
    if date_order not in ORDERS:
        raise ValidationError("Choose the date order: dmy, mdy or ymd.")
    chat_name = chat_name.strip() or job.chat_name or job.export.file_name
    job = ImportJob.objects.select_related("export__channel", "export__file").get(pk=job.pk)
    if job.state not in (State.READY, State.NEEDS_DATE_ORDER):
        raise ValidationError(f"This import is {job.get_state_display()}: it cannot be confirmed.")
    if date_order != job.preview.get("date_order") or job.preview.get("date_order_tentative"):
        _recheck(job, date_order)
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.state not in (State.READY, State.NEEDS_DATE_ORDER):
            raise ValidationError("This import has already been confirmed.")
        if _identical(job):
            return job
        resolved = _resolve(job, mapping)
        conversation = _conversation(job, resolved, chat_name[:200], one_to_one)
        fact = Fact(
            "import.started",
            {
                "export": job.export_id,
                "date_order": date_order,
                "parser_version": PARSER_VERSION,
                "conversation": conversation.pk if conversation.pk else None,
            },
            {
                "evidence": job.date_order_evidence.encode(),
                "mapping": json.dumps(resolved, sort_keys=True, ensure_ascii=False).encode(),
                "chat_name": chat_name.encode(),
                "user": (user.get_username() if user and user.pk else "").encode(),
            },
        )
        (started,) = ledger.append([fact])
        job.mapping, job.date_order, job.conversation = resolved, date_order, conversation
        job.chat_name, job.one_to_one = chat_name[:250], one_to_one
        job.started_entry, job.state, job.confirmed_at = started.seq, State.QUEUED, timezone.now()
        job.save()
        if queue:
            transaction.on_commit(lambda: async_task("imports.tasks.import_task", job.pk))
    return job


def _recheck(job: ImportJob, date_order: str) -> None:
    preview = _preview_of(job.export, date_order)
    if preview.error:
        raise ValidationError(f"The file cannot be read as {date_order}: {preview.error}")
    job.preview = {**preview.to_json(), "authors": job.preview.get("authors", preview.authors)}
    job.save(update_fields=["preview"])
    _replace_problems(job, preview.problems)


def _replace_problems(job: ImportJob, problems: list[tuple[int | None, str, str]]) -> None:
    job.problems.all().delete()
    ImportProblem.objects.bulk_create(
        (
            ImportProblem(job=job, line=line, kind=kind, problem=text[:2000])
            for line, kind, text in problems
        ),
        batch_size=5000,
    )


def _resolve(job: ImportJob, mapping: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each author of the preview → custodian / participant (created by number, sealed) /
    unknown; an author the mapping leaves out keeps the preview's guess."""
    resolved: dict[str, dict[str, Any]] = {}
    # an author as typed (the command line) matches one as exported, marks and case aside
    loose = {_loose(name): choice for name, choice in mapping.items()}
    for found in job.preview.get("authors", []):
        author = found["author"]
        choice = mapping.get(author) or loose.get(_loose(author))
        if choice is None:
            guess = found.get("guess")
            choice = (
                {"as": "custodian"}
                if guess == "custodian"
                else {"as": "participant", "id": guess}
                if isinstance(guess, int)
                else {"as": "unknown"}
            )
        resolved[author] = _resolve_one(author, choice)
    return resolved


def _loose(name: str) -> str:
    return " ".join(shadow(name).split()).casefold()


def _resolve_one(author: str, choice: dict[str, Any]) -> dict[str, Any]:
    kind = choice.get("as")
    if kind == "custodian":
        return {"as": "custodian"}
    if kind == "participant":
        participant = Participant.objects.filter(pk=int(choice.get("id") or 0)).first()
        if participant is None:
            raise ValidationError(f"“{author}”: there is no participant {choice.get('id')}.")
        return {"as": "participant", "id": participant.pk, "key": participant.key}
    if kind == "number":
        number = _DIGITS.sub("", str(choice.get("number", "")))
        if len(number) < 6:
            raise ValidationError(f"“{author}”: {choice.get('number')!r} is not a full number.")
        participant = sealing.participant(number, author)
        return {"as": "participant", "id": participant.pk, "key": participant.key, "number": number}
    if kind in (None, "unknown"):
        return {"as": "unknown"}
    raise ValidationError(f"“{author}”: unknown mapping {kind!r}.")


def _conversation(
    job: ImportJob,
    resolved: dict[str, dict[str, Any]],
    chat_name: str,
    one_to_one: bool,
) -> Conversation:
    """A one-to-one chat with a mapped participant: the channel's capture conversation with them
    (so the import lands beside the captured messages); otherwise export:<chat name>."""
    keys = {m["key"] for m in resolved.values() if m["as"] == "participant"}
    channel = job.export.channel
    if one_to_one and len(keys) == 1:
        participant = Participant.objects.get(key=keys.pop())
        return sealing.conversation(channel, participant.key, participant, "")
    group = "" if one_to_one else chat_name
    return sealing.conversation(channel, f"{EXPORT_KEY_PREFIX}{chat_name}", None, group)


# --- the run -----------------------------------------------------------------------------------


def run_import(job_id: int) -> ImportJob:
    """Claim the job and seal its entries in batches of CHAT_IMPORT_BATCH, each one transaction
    (ledger facts, rows, summaries, retention, the cursor); resume from the cursor after a crash;
    stop at a batch boundary when cancelled; seal `import.finished` at the end. A job another
    worker is running, or one already finished, is left as it is."""
    with _claimed(job_id) as job:
        if job is None:
            return ImportJob.objects.get(pk=job_id)
        try:
            sealing.run(job, settings.CHAT_IMPORT_BATCH)
        except Exception as exc:
            logger.exception("chat import %s failed", job_id)
            ImportJob.objects.filter(pk=job_id).update(
                state=State.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000]
            )
        return ImportJob.objects.get(pk=job_id)


def _lock(job_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [IMPORT_LOCK, job_id])
        return bool(cursor.fetchone()[0])


class _claimed:
    """The job, if no other run holds it and it is runnable (session advisory lock: a worker
    that dies releases it with its connection)."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.locked = False

    def __enter__(self) -> ImportJob | None:
        self.locked = _lock(self.job_id)
        if not self.locked:
            return None
        runnable = [State.QUEUED, State.RUNNING, State.FAILED, State.CANCELLING]
        claimed = ImportJob.objects.filter(pk=self.job_id, state__in=runnable)
        job = claimed.select_related("export__channel", "export__file", "conversation").first()
        if job is None:
            return None
        if job.state != State.CANCELLING:
            job.state = State.RUNNING
        job.attempts += 1
        job.started_at = job.started_at or timezone.now()
        job.error = ""
        job.save(update_fields=["state", "attempts", "started_at", "error", "updated_at"])
        return job

    def __exit__(self, *exc: object) -> None:
        if self.locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [IMPORT_LOCK, self.job_id])


def cancel(job: ImportJob, user: AbstractBaseUser | None) -> ImportJob:
    """Stop a job: one not yet running is cancelled at once, a running one at its next batch
    boundary (what was sealed stays sealed: the ledger is append-only)."""
    waiting = [State.ANALYSING, State.READY, State.NEEDS_DATE_ORDER, State.QUEUED, State.FAILED]
    now = timezone.now()
    stopped = ImportJob.objects.filter(pk=job.pk, state__in=waiting)
    if not stopped.update(state=State.CANCELLED, finished_at=now):
        ImportJob.objects.filter(pk=job.pk, state=State.RUNNING).update(state=State.CANCELLING)
    job.refresh_from_db()
    if job.state == State.CANCELLED and job.started_entry and not job.finished_entry:
        sealing.finish(job, outcome="cancelled")  # confirmed, never run: the record says so
    return job


def report_rows(job: ImportJob) -> Iterator[tuple[int | None, str, str]]:
    """The report's rows (line, kind, problem), in line order: the CSV download."""
    rows = job.problems.order_by("line", "id").values_list("line", "kind", "problem")
    yield from rows.iterator(chunk_size=2000)


def resume_stalled() -> int:
    """Queue again the jobs a worker that died left behind (analysing, queued, running or
    cancelling, untouched for STALLED); returns how many were queued. A job still running
    elsewhere holds its lock, so the queued run leaves it alone."""
    quiet = ImportJob.objects.filter(updated_at__lt=timezone.now() - STALLED)
    queued = 0
    for pk in quiet.filter(state=State.ANALYSING).values_list("pk", flat=True):
        async_task("imports.tasks.analyse_task", pk)
        queued += 1
    runnable = [State.QUEUED, State.RUNNING, State.CANCELLING]
    for pk in quiet.filter(state__in=runnable).values_list("pk", flat=True):
        async_task("imports.tasks.import_task", pk)
        queued += 1
    return queued
