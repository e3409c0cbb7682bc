"""Sealing an import (docs/IMPORTS.md): what confirm() creates (participants by number, the
conversation) and the batches run_import() commits.

A batch costs a fixed number of queries whatever its size, as the sequencer's do
(messaging/sequencer.py): the match keys and captured messages it may repeat are read in bulk,
its entries are sealed by one ledger append (and their attachments by a second), Message and
ImportedMessage rows are written by one COPY each (their ids drawn from the sequences in one
round trip), retention is fixed by the capture hook, and the job's cursor moves in the same
transaction. So a batch is either wholly sealed and counted, or not at all. The batch holds the
ledger's chain-head lock from its append to its commit, so whatever needs no seq is done before
(tests/performance/test_bench_import.py measures the hold; docs/IMPORTS.md §7).
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import Model
from django.db.models.base import ModelState
from django.utils import timezone

from archive import ledger
from archive.envelope import Fact, rfc3339
from archive.models import LedgerEntry
from messaging import hooks, summaries
from messaging.models import (
    PHONE_EXPORT,
    Attachment,
    Channel,
    ChatExport,
    Conversation,
    ImportedMessage,
    MediaFile,
    Message,
    Participant,
    ParticipantProfile,
)
from messaging.participants import participant_key

from . import matching, storage
from .models import ImportJob
from .parsing import PARSER_VERSION, Entry, ExportFile, detect, parse, shadow

State = ImportJob.State
_M = TypeVar("_M", bound=Model)
MISSING = "referenced in the export but not in the zip"


def _seal_one(fact: Fact, record: Model) -> Model:
    (entry,) = ledger.append([fact])
    record.entry = entry  # type: ignore[attr-defined]
    record.save(force_insert=True)
    hooks.sealed([record], [])  # retention/assign.py
    return record


def participant(number: str, name: str) -> Participant:
    """The participant with this WhatsApp number (sealed as `participant` when new, as the
    sequencer would), and the export's name for them as a sealed profile if they never showed it."""
    key = participant_key(number)
    found = Participant.objects.filter(key=key).first()
    if found is None:
        found = Participant(key=key, wa_id=number, user_id="")
        _seal_one(Fact("participant", {}, {"key": key.encode()}), found)
    if name and not ParticipantProfile.objects.filter(participant=found, name=name).exists():
        profile = ParticipantProfile(participant=found, name=name, seen_at=timezone.now())
        fact = Fact("participant.profile", {}, {"name": name.encode(), "username": b""})
        _seal_one(fact, profile)
    return found


def conversation(channel: Channel, key: str, who: Participant | None, group: str) -> Conversation:
    """The channel's conversation of this key, created and sealed (`conversation`) if absent."""
    key = key[:250]
    found = Conversation.objects.filter(channel=channel, key=key).first()
    if found is None:
        found = Conversation(channel=channel, key=key, participant=who, group_id=group[:250])
        fact = Fact(
            "conversation", {"phone_number_id": channel.phone_number_id}, {"key": key.encode()}
        )
        _seal_one(fact, found)
        summaries.record([found], [])
    return found


# --- the run -----------------------------------------------------------------------------------


def named(author: str) -> str:
    """The match identity of an author known only by name: invisible marks, spacing and case
    aside."""
    return "name:" + " ".join(shadow(author).split()).casefold()


@dataclass
class Author:
    identity: str  # for the match key
    direction: str
    sender_id: int | None


@dataclass
class Run:
    """What every batch of one run reads: the job, its export, who each author is."""

    job: ImportJob
    export: ChatExport
    conversation: Conversation
    zone: ZoneInfo
    authors: dict[str | None, Author]
    keys: matching.Keys
    members: dict[str, str]  # base name → member name
    file: ExportFile | None = None
    counts: dict[str, int] = field(default_factory=dict)
    # the same in every entry of the run, computed once
    fact_fields: dict[str, Any] = field(default_factory=dict)
    custodian: bytes = b""
    wamid: str = ""
    sequences: tuple[str, str] = ("", "")  # of Message's and ImportedMessage's ids

    def __post_init__(self) -> None:
        export = self.export
        self.fact_fields = {
            "export": export.pk,
            "phone_number_id": self.conversation.channel.phone_number_id,
            "time_zone": export.time_zone,
            "parser_version": PARSER_VERSION,
        }
        self.custodian = export.custodian.encode()
        self.wamid = f"export:{export.sha256[:32]}:"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, 'id'), pg_get_serial_sequence(%s, 'id')",
                [Message._meta.db_table, ImportedMessage._meta.db_table],
            )
            self.sequences = cursor.fetchone()

    @classmethod
    def of(cls, job: ImportJob) -> "Run":
        export = job.export
        # the custodian's own messages are "name:<custodian>", as another employee's export
        # shows them when it leaves that author unmapped: the two exports then match
        custodian = named(export.custodian)
        authors: dict[str | None, Author] = {None: Author("system", "in", None)}
        for author, choice in job.mapping.items():
            if choice["as"] == "custodian":
                authors[author] = Author(custodian, "out", None)
            elif choice["as"] == "participant":
                authors[author] = Author(choice["key"], "in", choice["id"])
        assert job.conversation is not None  # confirm() chose it
        counts = {"created": 0, "linked": 0, "captured": 0, "attachments": 0, "missing": 0}
        return cls(
            job=job,
            export=export,
            conversation=job.conversation,
            zone=ZoneInfo(export.time_zone),
            authors=authors,
            keys=matching.Keys(job.conversation.pk),
            members={},
            counts={**counts, **job.counts},
        )

    def author(self, name: str | None) -> Author:
        if name not in self.authors:  # a named unknown
            self.authors[name] = Author(named(name or ""), "in", None)
        return self.authors[name]

    def payload(self, entry: Entry, flags: list[str]) -> dict[str, Any]:
        """A created message's `payload["import"]`: where it came from (docs/IMPORTS.md)."""
        export = self.export
        return {
            "import": {
                "export": export.pk,
                "custodian": export.custodian,
                "author": entry.author,
                "lines": [entry.first_line, entry.last_line],
                "local_time": entry.local_time.isoformat(),
                "time_zone": export.time_zone,
                "kind": entry.kind,
                "flags": flags,
                "attachment": entry.attachment,
                "edited": entry.edited,
                "parser_version": PARSER_VERSION,
                "file_name": export.file_name,
            }
        }


@dataclass
class Planned:
    """An entry ready to seal, all but what the database decides: whether the archive holds it
    already (`same_as`), its row ids and its seq."""

    entry: Entry
    instant: datetime
    flags: list[str]
    author: Author
    key: str
    fact: Fact  # message.imported, with same_as null until the batch is linked (_linked)
    message: tuple[Any, ...]  # a created Message row's columns after its id (MESSAGE_FIELDS)
    payload: dict[str, Any]
    imported: tuple[Any, ...]  # its ImportedMessage row's columns from first_line on
    same_as: tuple[int, int] | None = None  # (message id, its seq)
    captured: bool = False


def run(job: ImportJob, batch_size: int) -> None:
    """Seal what the job's cursor says is left, batch by batch; then seal import.finished.

    Parsing the next batch in a thread while the database takes this one was tried and measured
    slower (3,409 → 2,956 messages/s on 100,000: the two threads contend for the GIL)."""
    state = Run.of(job)
    export = state.export
    with (
        storage.local_copy(export.file, export.file_name) as path,
        ExportFile.open(path, export.file_name) as opened,
    ):
        state.file = opened
        state.members = {PurePosixPath(m.name).name: m.name for m in opened.members}
        for batch in _batches(state, parse(opened, detect(opened), job.date_order), batch_size):
            seal_batch(state, batch)
            if _cancelling(job):
                finish(job, outcome="cancelled", counts=state.counts)
                return
    finish(job, outcome="done", counts=state.counts)


def _batches(state: Run, entries: Iterator[Entry], size: int) -> Iterator[list[Planned]]:
    """Planned entries in batches, skipping those an earlier run sealed (they still count in the
    occurrence numbers of the match keys, so that a resumed run computes the same keys)."""
    resume_at = state.job.next_line
    batch: list[Planned] = []
    for entry in entries:
        placed = _place(state, entry)
        if entry.first_line < resume_at:
            continue
        batch.append(_plan(state, entry, *placed))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _place(state: Run, entry: Entry) -> tuple[datetime, list[str], Author, str]:
    """An entry's instant, flags, author and match key (which counts it as it occurs)."""
    instant, dst = matching.aware(entry.local_time, state.zone)
    flags = [*entry.flags, dst] if dst else list(entry.flags)
    author = state.author(entry.author)
    return instant, flags, author, state.keys.key(instant, author.identity, entry.kind, entry.text)


def _plan(
    state: Run, entry: Entry, instant: datetime, flags: list[str], author: Author, key: str
) -> Planned:
    """Everything about an entry that needs no database: its fact and rows."""
    local_time = entry.local_time.isoformat()
    fact = Fact(
        "message.imported",
        {
            **state.fact_fields,  # export, phone number, time zone, parser version
            "first_line": entry.first_line,
            "last_line": entry.last_line,
            "local_time": local_time,
            "sent_at": rfc3339(instant),
            "entry_kind": entry.kind,  # "kind" is the envelope's own (the ledger kind)
            "flags": ",".join(flags),
            "direction": author.direction,
            "same_as": None,  # set once the batch is linked (_linked)
        },
        {
            "author": (entry.author or "").encode(),
            "text": entry.text.encode(),
            "custodian": state.custodian,
        },
    )
    message = (
        state.conversation.channel_id,
        f"{state.wamid}{entry.first_line}",
        state.conversation.pk,
        author.direction,
        PHONE_EXPORT,
        _type(entry),
        author.sender_id,
        instant,
        entry.text,
        "",
        "",
        False,
        False,
    )
    imported = (
        entry.first_line,
        entry.last_line,
        entry.author or "",
        local_time[:32],
        entry.kind,
    )
    payload = state.payload(entry, flags)
    return Planned(
        entry,
        instant,
        flags,
        author,
        key,
        fact,
        message,
        payload,
        imported,
    )


def _cancelling(job: ImportJob) -> bool:
    return ImportJob.objects.filter(pk=job.pk, state=State.CANCELLING).exists()


def seal_batch(state: Run, batch: list[Planned]) -> None:
    """One transaction: link what the archive holds, seal the rest, move the cursor.

    ledger.append takes the chain-head lock, which the batch holds until it commits (capture
    waits that long), so everything that needs no seq (links, facts, rows, ids, instances) is
    prepared before it; under the lock the rows get their seq and go in by COPY."""
    with transaction.atomic():
        _link(state, batch)
        facts = [_linked(p) for p in batch]
        rows = _Rows.of(state, batch)
        sealed = ledger.append(facts)
        rows.write(sealed)
        attachments, media = _attachments(state, batch, rows.by_line)
        summaries.record([], rows.messages)
        hooks.sealed([*rows.messages, *rows.imported, *media, *attachments], [])  # retention
        _count(state, batch, rows.messages, attachments)
        last = batch[-1].entry.last_line
        ImportJob.objects.filter(pk=state.job.pk).update(
            next_line=last + 1, lines_done=last, counts=state.counts, updated_at=timezone.now()
        )
        state.job.next_line = last + 1
        if rows.messages:
            hooks.messages_sealed()  # the lexicon scan, the bridge


def _link(state: Run, batch: list[Planned]) -> None:
    """Mark the entries the archive already holds: from another export (by match key), or
    captured from the Cloud API (same side, body and conversation, within 90 s)."""
    known: dict[str, tuple[int, int]] = {}
    if _other_imports(state):
        rows = (
            ImportedMessage.objects.filter(match_key__in=[p.key for p in batch])
            .exclude(export=state.export)
            .order_by("-pk")
            .values_list("match_key", "message_id", "message__entry_id")
        )
        for key, message_id, seq in rows:
            known[key] = (message_id, seq)  # the first import of it wins (read last)
    captured = matching.Captured(state.conversation.pk, [p.instant for p in batch])
    for planned in batch:
        planned.same_as = known.get(planned.key)
        if captured.empty or planned.same_as is not None or planned.entry.kind == "system":
            continue
        author = planned.author
        found = captured.find(
            author.direction, author.sender_id, planned.entry.text, planned.instant
        )
        if found is not None:
            planned.same_as, planned.captured = found, True


def _linked(planned: Planned) -> Fact:
    """The entry's fact, naming the message the archive already held (its seq), if any."""
    if planned.same_as is None:
        return planned.fact
    return replace(planned.fact, fields={**planned.fact.fields, "same_as": planned.same_as[1]})


def _other_imports(state: Run) -> bool:
    """Whether another job was confirmed into this conversation: a match key names its
    conversation, so only their entries can share one (else the batch skips that look-up, an
    index probe per entry). Asked per batch, as the look-up is, in the batch's transaction."""
    others = ImportJob.objects.filter(conversation=state.conversation).exclude(pk=state.job.pk)
    return others.exists()


# The columns each COPY writes, in row order (the model's attribute names; `entry_id` is the
# `seq` column). Message's `search` is generated by PostgreSQL: the GIN index serves search.
MESSAGE_FIELDS = (
    "id",
    "channel_id",
    "wamid",
    "conversation_id",
    "direction",
    "source",
    "type",
    "sender_id",
    "sent_at",
    "text",
    "target_wamid",
    "context_wamid",
    "forwarded",
    "frequently_forwarded",
    "payload",
    "delivery_id",
    "entry_id",
)
IMPORTED_FIELDS = (
    "id",
    "export_id",
    "message_id",
    "created",
    "first_line",
    "last_line",
    "author",
    "local_time",
    "kind",
    "flags",
    "match_key",
    "entry_id",
)


def _copy_sql(model: type[Model], names: tuple[str, ...]) -> str:
    columns = {f.attname: str(f.column) for f in model._meta.concrete_fields}
    return f"COPY {model._meta.db_table} ({', '.join(columns[n] for n in names)}) FROM STDIN"


@dataclass
class _Rows:
    """A batch's Message and ImportedMessage rows, and the model instances the hooks read (rows
    once the COPY is done), all built before the lock; each lacks only its seq."""

    messages: list[Message]
    imported: list[ImportedMessage]
    message_rows: list[tuple[Any, ...]]
    imported_rows: list[tuple[Any, ...]]
    positions: list[int]  # each message's place in the batch (its entry's)
    by_line: dict[int, Message]

    @classmethod
    def of(cls, state: Run, batch: list[Planned]) -> "_Rows":
        created = sum(1 for p in batch if p.same_as is None)
        message_ids, imported_ids = _ids(state, created, len(batch))
        rows = cls([], [], [], [], [], {})
        conversation = state.conversation
        for at, (planned, imported_id) in enumerate(zip(batch, imported_ids, strict=True)):
            if planned.same_as is None:
                message_id = message_ids.pop()
                fields = (message_id, *planned.message)
                rows.message_rows.append((*fields, json.dumps(planned.payload), None))
                message = _instance(Message, MESSAGE_FIELDS, (*fields, planned.payload, None, None))
                _CONVERSATION.set_cached_value(message, conversation)
                rows.messages.append(message)
                rows.positions.append(at)
                rows.by_line[planned.entry.first_line] = message
            else:
                message_id = planned.same_as[0]
            values = (
                imported_id,
                state.export.pk,
                message_id,
                planned.same_as is None,
                *planned.imported,
            )
            flags = planned.flags
            rows.imported_rows.append((*values, json.dumps(flags) if flags else "[]", planned.key))
            rows.imported.append(
                _instance(ImportedMessage, IMPORTED_FIELDS, (*values, flags, planned.key, None))
            )
        return rows

    def write(self, sealed: list[LedgerEntry]) -> None:
        """Give every row and instance its seq, and COPY the rows (the fastest way PostgreSQL
        takes rows; its triggers and indexes apply as to any insert)."""
        for imported, entry in zip(self.imported, sealed, strict=True):
            imported.entry_id = entry.seq
            _IMPORTED_ENTRY.set_cached_value(imported, entry)
        for message, at in zip(self.messages, self.positions, strict=True):
            message.entry_id = sealed[at].seq  # a message created shares its entry's seq
            _MESSAGE_ENTRY.set_cached_value(message, sealed[at])
        with connection.cursor() as cursor:
            raw = cursor.cursor
            if self.message_rows:
                with raw.copy(_MESSAGE_COPY) as copy:
                    for row, message in zip(self.message_rows, self.messages, strict=True):
                        copy.write_row((*row, message.entry_id))
            with raw.copy(_IMPORTED_COPY) as copy:
                for row, imported in zip(self.imported_rows, self.imported, strict=True):
                    copy.write_row((*row, imported.entry_id))


def _instance(model: type[_M], names: tuple[str, ...], values: tuple[Any, ...]) -> _M:
    """The instance of a row this batch COPYs (its seq set later), as `Model.from_db` would
    make it but without running every field's descriptor: a few microseconds each, and a batch
    makes thousands for the hooks, which only read them. `search` stays deferred."""
    instance = model.__new__(model)
    instance.__dict__.update(zip(names, values, strict=True))
    instance._state = ModelState()
    instance._state.adding = False
    instance._state.db = DEFAULT_DB_ALIAS  # the connection the COPY used
    return instance


_MESSAGE_COPY = _copy_sql(Message, MESSAGE_FIELDS)
_IMPORTED_COPY = _copy_sql(ImportedMessage, IMPORTED_FIELDS)
_CONVERSATION = Message._meta.get_field("conversation")
_MESSAGE_ENTRY = Message._meta.get_field("entry")
_IMPORTED_ENTRY = ImportedMessage._meta.get_field("entry")


def _ids(state: Run, messages: int, imported: int) -> tuple[list[int], list[int]]:
    """Ids for the batch's new messages and its entries, from their tables' sequences, in one
    round trip (message ids popped from the end: reversed, so they ascend in file order)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ARRAY(SELECT nextval(%s::regclass) FROM generate_series(1, %s)),"
            " ARRAY(SELECT nextval(%s::regclass) FROM generate_series(1, %s))",
            [state.sequences[0], messages, state.sequences[1], imported],
        )
        message_ids, imported_ids = cursor.fetchone()
    return sorted(message_ids, reverse=True), sorted(imported_ids)


def _type(entry: Entry) -> str:
    if entry.kind == "attachment" and entry.attachment:
        return storage.message_type(entry.attachment)
    return entry.kind


def _attachments(
    state: Run, batch: list[Planned], by_line: dict[int, Message]
) -> tuple[list[Attachment], list[MediaFile]]:
    """Each created message's file: the zip member stored (once per content) and sealed as the
    message's attachment; a file the export names but the zip lacks, as unavailable."""
    new_media: list[MediaFile] = []
    facts: list[Fact] = []
    rows: list[Attachment] = []
    for planned in batch:
        entry = planned.entry
        message = by_line.get(entry.first_line)
        if message is None or entry.kind != "attachment" or not entry.attachment:
            continue
        base = PurePosixPath(entry.attachment.replace("\\", "/")).name
        member = state.members.get(base)
        media = None
        if member is not None and state.file is not None:
            with state.file.open_member(member) as source:
                media = storage.store_member(source, member, new_media.append)
        outcome = Attachment.Outcome.STORED if media else Attachment.Outcome.UNAVAILABLE
        reason = "" if media else MISSING
        media_id = f"export:{member or entry.attachment}"[:200]
        facts.append(
            Fact(
                "message.attachment",
                {"message_seq": message.entry_id, "outcome": str(outcome)},
                {
                    "media_id": media_id.encode(),
                    "sha256": bytes.fromhex(media.sha256) if media else b"",
                    "reason": reason.encode(),
                },
            )
        )
        rows.append(
            Attachment(
                message=message, media_id=media_id, outcome=outcome, reason=reason, file=media
            )
        )
    if rows:
        for row, sealed in zip(rows, ledger.append(facts), strict=True):
            row.entry = sealed
        Attachment.objects.bulk_create(rows)
    return rows, new_media


def _count(
    state: Run, batch: list[Planned], messages: list[Message], attachments: list[Attachment]
) -> None:
    counts = state.counts
    counts["created"] += len(messages)
    counts["captured"] += sum(1 for p in batch if p.captured)
    counts["linked"] += sum(1 for p in batch if p.same_as and not p.captured)
    counts["attachments"] += sum(1 for a in attachments if a.file_id)
    counts["missing"] += sum(1 for a in attachments if not a.file_id)


def finish(job: ImportJob, *, outcome: str, counts: dict[str, int] | None = None) -> None:
    """Seal `import.finished` (counts, and the files the zip holds unreferenced or lacks) and
    close the job as done or cancelled."""
    counts = counts if counts is not None else dict(job.counts)
    preview = job.preview or {}
    unreferenced, missing = preview.get("unreferenced", []), preview.get("missing", [])
    fields: dict[str, Any] = {"export": job.export_id, "outcome": outcome}
    fields.update({k: int(v) for k, v in counts.items() if k in _COUNTED})
    fields.update({"unreferenced": len(unreferenced), "missing_files": len(missing)})
    fact = Fact(
        "import.finished",
        fields,
        {
            "unreferenced": json.dumps(unreferenced, ensure_ascii=False).encode(),
            "missing": json.dumps(missing, ensure_ascii=False).encode(),
        },
    )
    with transaction.atomic():
        (entry,) = ledger.append([fact])
        state = State.DONE if outcome == "done" else State.CANCELLED
        done: dict[str, Any] = {"lines_done": job.lines_total} if state == State.DONE else {}
        ImportJob.objects.filter(pk=job.pk).update(
            state=state, counts=counts, finished_entry=entry.seq, finished_at=timezone.now(), **done
        )


_COUNTED = ("created", "linked", "captured", "attachments", "missing")
