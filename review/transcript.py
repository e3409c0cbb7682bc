"""A conversation as a reviewer reads it: a window of messages in time order, each with what
happened to it afterwards (statuses, reactions, edits, a deletion) and its evidence.

Nothing is hidden: an edited message shows its current text and every earlier one; a deleted
message keeps its original content, marked as deleted by the sender. Long conversations load in
windows around a chosen message, each a handful of indexed queries whatever the length.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import BooleanField, F, Field, Model, Q, QuerySet
from django.db.models.expressions import RawSQL

from messaging.models import Attachment, Conversation, ImportedMessage, Message, StatusEvent
from messaging.participants import latest_names
from messaging.statuses import current_status
from messaging.summaries import ANNOTATION_TYPES
from review.models import Flag, MessageTag
from review.provenance import Imported, author_name, imported, linked

WINDOW = 60
DISPOSED_PREFIX = "disposed:"  # what retention_dispose() makes a disposed message's wamid


@dataclass
class Row:
    """One message with everything the transcript shows beside it."""

    message: Message
    sender_name: str = ""
    status: str = ""
    statuses: list[StatusEvent] = field(default_factory=list)
    reactions: list[Message] = field(default_factory=list)
    edits: list[Message] = field(default_factory=list)
    revoked: Message | None = None
    quoted: Message | None = None
    attachment: Attachment | None = None
    tags: list[MessageTag] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    checkpoint: int | None = None  # the tree size of the first checkpoint that covers it
    # A message imported from a phone export: what the export said (review/provenance.py).
    imported: Imported | None = None
    # The phone exports' lines that repeat this message (ImportedMessage, created=False).
    linked_imports: list[ImportedMessage] = field(default_factory=list)

    @property
    def also_in(self) -> list[Imported]:
        """The other phone exports this message is in: "also in the phone export of …"."""
        return [linked(entry) for entry in self.linked_imports]

    @property
    def disposed(self) -> bool:
        """Its content was disposed of at the end of its retention (docs/RETENTION.md)."""
        return self.message.wamid.startswith(DISPOSED_PREFIX)

    @property
    def current_text(self) -> str:
        return self.edits[-1].text if self.edits else self.message.text

    @property
    def body(self) -> Any:
        payload = self.message.payload if isinstance(self.message.payload, dict) else {}
        return payload.get(self.message.type)


@dataclass
class Window:
    rows: list[Row]
    has_earlier: bool
    has_later: bool


def _visible(conversation: Conversation) -> QuerySet[Message]:
    return Message.objects.filter(conversation=conversation).exclude(type__in=ANNOTATION_TYPES)


# Messages sort by (sent_at, id) with undated ones first, as the message_transcript and
# message_sent indexes store them (NULLS FIRST): these orders read those indexes forwards and
# backwards, and the keyset conditions below let PostgreSQL seek to the starting row.
ASC = (F("sent_at").asc(nulls_first=True), "id")
DESC = (F("sent_at").desc(nulls_last=True), "-id")


def later_than(message: Message) -> Q:
    """Everything after `message` in ASC order (for a dated one, a range the index seeks to)."""
    if message.sent_at is None:
        return Q(sent_at__isnull=True, id__gt=message.pk) | Q(sent_at__isnull=False)
    return Q(sent_at__gte=message.sent_at) & (Q(sent_at__gt=message.sent_at) | Q(id__gt=message.pk))


def _older(visible: QuerySet[Message], message: Message, limit: int) -> list[Message]:
    """Up to `limit` messages before `message`, newest first. Undated messages sort before all
    dated ones: they are read only if the dated ones run out, so the dated range stays a seek."""
    if message.sent_at is None:
        undated = visible.filter(sent_at__isnull=True, id__lt=message.pk)
        return list(undated.order_by(*DESC)[:limit])
    dated = Q(sent_at__lte=message.sent_at) & (
        Q(sent_at__lt=message.sent_at) | Q(id__lt=message.pk)
    )
    found = list(visible.filter(dated).order_by(*DESC)[:limit])
    if len(found) < limit:
        undated = visible.filter(sent_at__isnull=True).order_by(*DESC)
        found += list(undated[: limit - len(found)])
    return found


def _newer(visible: QuerySet[Message], message: Message, limit: int) -> list[Message]:
    """Up to `limit` messages after `message`, oldest first."""
    return list(visible.filter(later_than(message)).order_by(*ASC)[:limit])


def window(
    conversation: Conversation,
    *,
    at: Message | None = None,
    before: Message | None = None,
    after: Message | None = None,
    size: int = WINDOW,
) -> Window:
    """The latest `size` messages, or those around `at`, or the next ones before/after."""
    visible = _visible(conversation).select_related("entry", "sender")
    if before is not None:
        older = _older(visible, before, size + 1)
        return _decorate(conversation, older[:size][::-1], len(older) > size, True)
    if after is not None:
        newer = _newer(visible, after, size + 1)
        return _decorate(conversation, newer[:size], True, len(newer) > size)
    if at is not None:
        half = size // 2
        older = _older(visible, at, half + 1)
        newer = _newer(visible, at, half + 1)
        rows = [*older[:half][::-1], at, *newer[:half]]
        return _decorate(conversation, rows, len(older) > half, len(newer) > half)
    latest = list(visible.order_by(*DESC)[: size + 1])
    return _decorate(conversation, latest[:size][::-1], len(latest) > size, False)


def resolve(conversation: Conversation, message: Message) -> Message:
    """The message a transcript opens at: a reaction, edit or deletion opens at its target."""
    if message.type in ANNOTATION_TYPES and message.target_wamid:
        target = _visible(conversation).filter(wamid=message.target_wamid).first()
        if target is not None:
            return target
    return message


def _decorate(
    conversation: Conversation, messages: list[Message], has_earlier: bool, has_later: bool
) -> Window:
    rows = decorate(conversation, messages)
    if rows:
        by_id = {row.message.pk: row for row in rows}
        for tag in MessageTag.objects.filter(_any(MessageTag, "message", by_id)).select_related(
            "tag"
        ):
            by_id[tag.message_id].tags.append(tag)
        for flag in Flag.objects.filter(_any(Flag, "message", by_id)).select_related(
            "lexicon_policy"
        ):
            by_id[flag.message_id].flags.append(flag)  # type: ignore[index]
    return Window(rows, has_earlier, has_later)


def decorate(
    conversation: Conversation, messages: list[Message], *, upto: int | None = None
) -> list[Row]:
    """Rows for `messages` (of one conversation) with what happened to them afterwards, and
    their evidence. With `upto`, only what was sealed before ledger seq `upto` is used: exports
    show the archive exactly as of the checkpoint they prove against (exports/source.py)."""
    return decorate_in_channel(conversation.channel_id, messages, upto=upto)


def decorate_in_channel(
    channel: int, messages: list[Message], *, upto: int | None = None
) -> list[Row]:
    """`decorate` for messages of any conversations of one channel, in the same statements:
    a wamid is unique within its channel, so what happened to each is found as for one
    conversation (exports read many short conversations this way, exports/source.py)."""
    rows = [Row(m) for m in messages]
    if not rows:
        return rows
    by_wamid = {row.message.wamid: row for row in rows}
    by_id = {row.message.pk: row for row in rows}
    sealed = Q(entry_id__lt=upto) if upto is not None else Q()
    _annotations(channel, by_wamid, sealed)
    _statuses(channel, by_wamid, sealed)
    _quotes(channel, rows)
    _names(rows)
    attachments = Attachment.objects.filter(
        sealed, _any(Attachment, "message", by_id)
    ).select_related("file")
    for attachment in attachments:
        by_id[attachment.message_id].attachment = attachment
    _imports(rows, by_id, sealed)
    _checkpoints(rows)
    return rows


def _imports(rows: list[Row], by_id: dict[int, Row], sealed: Q) -> None:
    """What phone exports say of each message: its own (an imported one), and the exports' lines
    linked to it (a captured message, or one imported from another employee's export)."""
    for row in rows:
        row.imported = imported(row.message)
        if row.imported is not None and not row.sender_name:
            row.sender_name = (
                row.imported.custodian
                if row.message.direction == "out"
                else author_name(row.imported)
            )
    links = ImportedMessage.objects.filter(
        sealed, _any(ImportedMessage, "message", by_id), created=False
    )
    for entry in links.select_related("export").order_by("export_id", "first_line"):
        by_id[entry.message_id].linked_imports.append(entry)


def _annotations(channel: int, by_wamid: dict[str, Row], sealed: Q) -> None:
    annotations = Message.objects.filter(
        sealed,
        _any(Message, "target_wamid", by_wamid),
        channel_id=channel,
        type__in=ANNOTATION_TYPES,
    ).order_by(*ASC)
    latest_reaction: dict[tuple[str, int | None, str], Message] = {}
    for note in annotations.select_related("sender"):
        row = by_wamid[note.target_wamid]
        if note.type == "edit":
            row.edits.append(note)
        elif note.type == "revoke":
            row.revoked = row.revoked or note
        else:  # the latest reaction per sender and direction stands; an empty emoji removes it
            latest_reaction[(note.target_wamid, note.sender_id, note.direction)] = note
    for (wamid, _, _), reaction in latest_reaction.items():
        body = reaction.payload.get("reaction") if isinstance(reaction.payload, dict) else None
        if isinstance(body, dict) and body.get("emoji"):
            by_wamid[wamid].reactions.append(reaction)


def _statuses(channel: int, by_wamid: dict[str, Row], sealed: Q) -> None:
    outbound = [w for w, row in by_wamid.items() if row.message.direction == "out"]
    if not outbound:
        return
    events = StatusEvent.objects.filter(
        sealed, _any(StatusEvent, "wamid", outbound), channel_id=channel
    )
    for event in events.order_by("occurred_at", "id"):
        by_wamid[event.wamid].statuses.append(event)
    for wamid in outbound:
        row = by_wamid[wamid]
        row.status = current_status(e.status for e in row.statuses)


def _quotes(channel: int, rows: list[Row]) -> None:
    contexts = {row.message.context_wamid for row in rows if row.message.context_wamid}
    if not contexts:
        return
    quoted = {
        m.wamid: m
        for m in Message.objects.filter(_any(Message, "wamid", contexts), channel_id=channel)
    }
    for row in rows:
        row.quoted = quoted.get(row.message.context_wamid)


def _names(rows: list[Row]) -> None:
    names = latest_names({row.message.sender_id for row in rows if row.message.sender_id})
    for row in rows:
        if row.message.sender_id:
            row.sender_name = names.get(row.message.sender_id, "")
    sent_by_us = [row for row in rows if row.message.source == "api"]
    if sent_by_us:
        for name_senders in STAFF_NAMERS:
            name_senders(sent_by_us)


# Who at the firm sent a message through ClientWindow, and how: the apps that send register a
# function here in their AppConfig.ready() (bridge/transcript.py); it sets `sender_name` on the
# rows of messages they sent.
STAFF_NAMERS: list[Callable[[list[Row]], None]] = []


def _any(model: type[Model], name: str, values: Iterable[Any]) -> RawSQL:
    """`field = ANY(values)` as one array parameter: what `field__in=values` means, without the
    thousand-placeholder IN list Django would build for a page of a thousand messages (which
    cost it more than PostgreSQL spends running the statement)."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field)
    quote = connection.ops.quote_name
    column = f"{quote(model._meta.db_table)}.{quote(str(field.column))}"
    # names from the model, the values a parameter: nothing from a request is SQL here
    return RawSQL(f"{column} = ANY(%s)", [list(values)], output_field=BooleanField())  # noqa: S611


def _checkpoints(rows: list[Row]) -> None:
    """For each entry, the smallest signed tree that includes it (one indexed probe each)."""
    seqs = sorted({row.message.entry_id for row in rows})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.seq, (SELECT min(tree_size) FROM archive_checkpoint WHERE tree_size > s.seq)"
            " FROM unnest(%s::bigint[]) AS s(seq)",
            [seqs],
        )
        covering = dict(cursor.fetchall())
    for row in rows:
        row.checkpoint = covering.get(row.message.entry_id)
