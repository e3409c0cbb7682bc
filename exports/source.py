"""What every export format reads: the scope's messages, conversation by conversation, in time
order and in bounded chunks, each message decorated as the transcript shows it (statuses,
reactions, edits, a deletion, the quoted message, its attachment), as of one signed checkpoint.

Everything is read as of the export's checkpoint: only entries with seq < its tree size are used,
so the same scope against the same checkpoint always yields the same rows, whatever was sealed
since. Writers (exports/pdf.py, eml.py, rsmf.py, csv.py, bundle.py) iterate `Source.parts()`
as often as they need; nothing is held beyond one chunk of rows and one of conversations, so
memory stays flat at any size.

A subject access export (Scope.redact_others) is redacted here, once, as the rows are read
(`Redaction`): every writer, and every pass over the rows, sees the same pseudonyms.
"""

import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Max, Min, QuerySet

from archive.checkpoints import parse_checkpoint_body
from archive.models import Checkpoint
from messaging.models import Conversation, Message, Participant
from messaging.participants import latest_names
from review.provenance import chat_name
from review.transcript import Row, decorate, decorate_in_channel, later_than

from .scope import Scope

CHUNK = 500
PSEUDONYM_KEY = "pseudonym:"  # the key of a Redaction's stand-in, followed by its name
EXPORT_AUTHOR = "export-author:"  # how a Redaction knows an author named only in a phone export
_NOT_DIGIT = re.compile(r"\D")
# A string that is a phone number however written ("+44 7700 900123", "(0)20-7946"): a
# contact card's number is compared with other people's by its digits.
_PHONE = re.compile(r"\+?[0-9][0-9 ().-]{4,}[0-9]")


class Cancelled(Exception):
    """The requester cancelled the export; the job stops at the next chunk."""


@dataclass
class Part:
    """One conversation of the export, with the messages of the scope in it."""

    conversation: Conversation
    name: str  # the participant's latest profile name ("" if none, or for a group)
    count: int  # messages in scope
    first_at: datetime | None
    last_at: datetime | None
    _chunks: Callable[[], Iterator[list[Row]]] = field(repr=False, default=lambda: iter(()))

    @property
    def title(self) -> str:
        convo = self.conversation
        chat = chat_name(convo)  # a chat an export created, its other side not mapped to a number
        who = (
            f"{self.name} (+{convo.participant.wa_id})"
            if convo.participant and convo.participant.wa_id and self.name
            else f"+{convo.participant.wa_id}"
            if convo.participant and convo.participant.wa_id
            else f"group {convo.group_id}"
            if convo.group_id
            else f"chat “{chat}” from a phone export"
            if chat
            else str(convo)
        )
        return f"{who} · {convo.channel.name}"

    @property
    def chat(self) -> str:
        """The chat's name, for a conversation a phone export created ("" for any other)."""
        return chat_name(self.conversation)

    def chunks(self) -> Iterator[list[Row]]:
        """The decorated rows, CHUNK at a time, oldest first."""
        return self._chunks()

    def rows(self) -> Iterator[Row]:
        for chunk in self.chunks():
            yield from chunk


def pseudonym(person: Participant | None) -> str:
    """The name of a Redaction's stand-in ("Participant 3"), or "" for anyone real: what a writer
    shows for a person it has no profile name for, where it would otherwise show a number."""
    if person is None or person.pk is not None or not person.key.startswith(PSEUDONYM_KEY):
        return ""
    return person.key.removeprefix(PSEUDONYM_KEY)


class Redaction:
    """Everyone in a subject access export but its subject, pseudonymised (GDPR Art. 15: the
    other members of the subject's group chats are not the subject's to receive).

    Each other person (by number or user id) gets a stand-in: an unsaved Participant with no
    number, the user id "participant-<n>" and the name "Participant <n>", numbered from 2 (the
    subject is the first) in the order they first appear as the export is read, so the same
    source always gives the same numbers, and every writer and every pass sees the same ones.
    In each row, senders, reactors, the authors of quoted messages and status recipients become
    their stand-ins; the names shown for them become "Participant <n>"; and their numbers and
    user ids become the stand-in's id wherever a payload holds them (the sender of a reaction,
    a reply's context, a contact card's number).

    What people wrote is kept: the text of a message, a quoted message, an edit or a contact
    card stays as it was, since it is the context of the subject's own conversation; only who
    wrote it is hidden. The business's own channel is no participant and is never replaced.
    WhatsApp's message ids (wamids) are kept too: they are how replies, reactions and the
    ledger refer to a message.
    """

    def __init__(self, subject: str) -> None:
        self.subject = subject  # the subject's number, as Scope.participant holds it
        self.stand_ins: dict[str, Participant] = {}  # by the stand-in's id, "participant-<n>"
        self._ids: dict[str, str] = {}  # another person's number or user id -> stand-in's id

    def person(self, person: Participant | None) -> Participant | None:
        """The stand-in for anyone but the subject (the same one every time), else `person`."""
        if person is None or (person.wa_id and person.wa_id == self.subject) or pseudonym(person):
            return person
        return self._stand_in(person.wa_id, person.user_id)

    def _stand_in(self, wa_id: str, user_id: str = "") -> Participant:
        known = self._ids.get(wa_id) or self._ids.get(user_id)
        if known is None:
            n = len(self.stand_ins) + 2
            known = f"participant-{n}"
            self.stand_ins[known] = Participant(
                key=f"{PSEUDONYM_KEY}Participant {n}", user_id=known
            )
        self._ids.update({real: known for real in (wa_id, user_id) if real})
        return self.stand_ins[known]

    def private(self, conversation: Conversation) -> bool:
        """Whether the conversation's raw records may name other people: a group's (a reaction's
        sender, a quoted author), or one with someone else. exports/bundle.py withholds them."""
        return bool(conversation.group_id) or bool(pseudonym(conversation.participant))

    def rows(self, conversation: Conversation, rows: list[Row]) -> None:
        """Pseudonymise everyone but the subject in `rows`, which are `conversation`'s."""
        firm = _NOT_DIGIT.sub("", conversation.channel.display_number)
        kept = {self.subject, firm, conversation.group_id} - {""}
        shown = [_shown(row) for row in rows]
        _fetch_senders([message for messages in shown for message in messages])
        for row, messages in zip(rows, shown, strict=True):
            self._row(row, messages, kept)

    def _row(self, row: Row, messages: list[Message], kept: set[str]) -> None:
        for message in messages:
            message.sender = self.person(message.sender)
            quoted = _quoted_author(message)
            if quoted and quoted not in kept:  # a quoted author, even one not in the archive
                self._stand_in(quoted)
        for status in row.statuses:
            if status.recipient_id and status.recipient_id not in kept:
                status.recipient_id = self._stand_in(status.recipient_id).user_id
        if name := pseudonym(row.message.sender):
            row.sender_name = name
        self._imported(row)
        for message in messages:
            message.payload = self._scrub(message.payload)
        for status in row.statuses:
            status.payload = self._scrub(status.payload)

    def _imported(self, row: Row) -> None:
        """The author a phone export names, if not the subject: their stand-in's name in the
        row and in the message's import facts; one named only there (no number mapped) gets a
        stand-in of their own, by that name."""
        entry, message = row.imported, row.message
        if entry is None or not entry.author or message.direction == "out":
            return  # the custodian's own messages are the firm's side
        if message.sender is None:
            row.sender_name = pseudonym(self._stand_in(f"{EXPORT_AUTHOR}{entry.author}"))
        name = pseudonym(message.sender) if message.sender is not None else row.sender_name
        if not name:
            return  # the subject, as the export named them
        row.imported = replace(entry, author=name)
        facts = dict(message.payload.get("import") or {})
        message.payload = {**message.payload, "import": {**facts, "author": name}}

    def _scrub(self, value: Any) -> Any:
        """A copy of a payload with other people's numbers and user ids made their stand-ins'."""
        if isinstance(value, dict):
            return {key: self._scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._scrub(item) for item in value]
        if isinstance(value, str):
            digits = _NOT_DIGIT.sub("", value) if _PHONE.fullmatch(value) else ""
            return self._ids.get(value) or self._ids.get(digits) or value
        return value


def _shown(row: Row) -> list[Message]:
    """A row's messages in the order a reader meets them (which numbers the pseudonyms)."""
    found = [row.message, row.quoted, *row.edits, row.revoked, *row.reactions]
    return [message for message in found if message is not None]


def _quoted_author(message: Message) -> str:
    """The number a reply's context names as the quoted message's author ("" if none)."""
    payload = message.payload if isinstance(message.payload, dict) else {}
    context = payload.get("context")
    return str(context.get("from", "")) if isinstance(context, dict) else ""


def _fetch_senders(messages: list[Message]) -> None:
    """The senders decorate() did not fetch (a quoted message's), in one query."""
    wanted = [m for m in messages if m.sender_id and not Message.sender.is_cached(m)]
    if wanted:
        people = Participant.objects.in_bulk({m.sender_id for m in wanted})
        for message in wanted:
            message.sender = people[message.sender_id]


@dataclass
class Source:
    """An export's input: its identity, its scope and the checkpoint it is proven against."""

    export_id: str
    created_at: datetime  # when the export ran (shown; not part of the deterministic content)
    requester: str
    scope: Scope
    checkpoint: Checkpoint
    # Called with the number of rows each chunk yields (progress), and may raise Cancelled.
    on_rows: Callable[[int], None] = field(default=lambda n: None, repr=False)
    # Set from the scope: the pseudonyms of this export, kept across passes over its rows.
    redaction: Redaction | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if self.scope.redact_others:
            self.redaction = Redaction(self.scope.participant)

    @property
    def tree_size(self) -> int:
        return self.checkpoint.tree_size

    @property
    def origin(self) -> str:
        return parse_checkpoint_body(self.checkpoint.note.split("\n\n", 1)[0] + "\n")[0]

    def messages(self) -> QuerySet[Message]:
        return self.scope.messages().filter(entry_id__lt=self.tree_size)

    def count(self) -> int:
        return self.messages().count()

    def conversation_count(self) -> int:
        return self.messages().values("conversation_id").distinct().count()

    def parts(self) -> Iterator[Part]:
        """The conversations in scope, ordered by their first message in scope, then id."""
        per_conversation = (
            self.messages()
            .values("conversation_id")
            .annotate(first=Min("sent_at"), last=Max("sent_at"), n=Count("id"))
            .order_by(F("first").asc(nulls_first=True), "conversation_id")
        )
        # CHUNK conversations at a time: an export may span tens of thousands of them.
        stats = per_conversation.iterator(chunk_size=CHUNK)
        while batch := list(itertools.islice(stats, CHUNK)):
            yield from self._parts(batch)

    def _parts(self, stats: Sequence[Mapping[str, Any]]) -> Iterator[Part]:
        conversations = Conversation.objects.select_related("channel", "participant").in_bulk(
            [s["conversation_id"] for s in stats]
        )
        names = latest_names({c.participant_id for c in conversations.values() if c.participant_id})
        for group in _together(stats):
            read = self._read_together([conversations[s["conversation_id"]] for s in group])
            for stat in group:
                convo = conversations[stat["conversation_id"]]
                name = names.get(convo.participant_id or 0, "")
                if self.redaction is not None and convo.participant is not None:
                    # The subject's own conversations are theirs; anyone else's is pseudonymised.
                    convo.participant = self.redaction.person(convo.participant)
                    name = pseudonym(convo.participant) or name
                yield Part(
                    conversation=convo,
                    name=name,
                    count=stat["n"],
                    first_at=stat["first"],
                    last_at=stat["last"],
                    _chunks=self._reader(convo, read),
                )

    def _reader(
        self, convo: Conversation, read: dict[int, list[Row]] | None
    ) -> Callable[[], Iterator[list[Row]]]:
        if read is None:
            scoped = self.messages().filter(conversation=convo)
            return lambda: self._chunks(convo, scoped)
        rows = read.get(convo.pk, [])
        return lambda: self._read(rows)

    def _read(self, rows: list[Row]) -> Iterator[list[Row]]:
        """A conversation read with others (`_read_together`): its one chunk."""
        if rows:
            self.on_rows(len(rows))
            yield rows

    def _read_together(self, convos: list[Conversation]) -> dict[int, list[Row]] | None:
        """The decorated rows of short conversations, by conversation, read and decorated
        together: one statement for their messages and one `decorate` per channel, where each
        conversation read on its own cost ~6 statements (~30 ms a conversation and format pass
        in an export of many short ones). None for a conversation alone, and in a redacted
        export, where the pseudonyms are numbered in the order a reader meets people,
        conversation by conversation (both read by `_chunks`)."""
        if len(convos) < 2 or self.redaction is not None:
            return None
        messages = list(
            self.messages()
            .filter(conversation__in=convos)
            .select_related("entry", "sender")
            .order_by("conversation_id", F("sent_at").asc(nulls_first=True), "id")
        )
        by_channel: dict[int, list[Message]] = {}
        for message in messages:
            by_channel.setdefault(message.channel_id, []).append(message)
        read: dict[int, list[Row]] = {}
        for channel, found in by_channel.items():
            for row in decorate_in_channel(channel, found, upto=self.tree_size):
                read.setdefault(row.message.conversation_id, []).append(row)
        return read

    def _chunks(self, convo: Conversation, scoped: QuerySet[Message]) -> Iterator[list[Row]]:
        ordered = scoped.select_related("entry", "sender").order_by(
            F("sent_at").asc(nulls_first=True), "id"
        )
        last: Message | None = None
        while True:
            page = ordered.filter(later_than(last)) if last is not None else ordered
            chunk = list(page[:CHUNK])
            if not chunk:
                return
            self.on_rows(len(chunk))
            rows = decorate(convo, chunk, upto=self.tree_size)
            if self.redaction is not None:
                self.redaction.rows(convo, rows)
            yield rows
            if len(chunk) < CHUNK:  # the last: no statement to find nothing after it
                return
            last = chunk[-1]


def _together(stats: Sequence[Mapping[str, Any]]) -> Iterator[list[Mapping[str, Any]]]:
    """The conversations in order, in groups read together: consecutive ones of fewer than
    CHUNK messages each, up to CHUNK messages a group; a longer one alone."""
    group: list[Mapping[str, Any]] = []
    size = 0
    for stat in stats:
        if group and (size + stat["n"] > CHUNK or stat["n"] >= CHUNK):
            yield group
            group, size = [], 0
        group.append(stat)
        size += stat["n"]
    if group:
        yield group
