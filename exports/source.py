"""What every export format reads: the scope's messages, conversation by conversation, in time
order and in bounded chunks, each message decorated as the transcript shows it (statuses,
reactions, edits, a deletion, the quoted message, its attachment), as of one signed checkpoint.

Everything is read as of the export's checkpoint: only entries with seq < its tree size are used,
so the same scope against the same checkpoint always yields the same rows, whatever was sealed
since. Writers (exports/pdf.py, eml.py, rsmf.py, csv.py, bundle.py) iterate `Source.parts()`
as often as they need; nothing is held beyond one chunk, so memory stays flat at any size.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, F, Max, Min, QuerySet

from archive.checkpoints import parse_checkpoint_body
from archive.models import Checkpoint
from messaging.models import Conversation, Message
from messaging.participants import latest_names
from review.transcript import Row, decorate, later_than

from .scope import Scope

CHUNK = 500


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
        who = (
            f"{self.name} (+{convo.participant.wa_id})"
            if convo.participant and convo.participant.wa_id and self.name
            else f"+{convo.participant.wa_id}"
            if convo.participant and convo.participant.wa_id
            else f"group {convo.group_id}"
            if convo.group_id
            else str(convo)
        )
        return f"{who} · {convo.channel.name}"

    def chunks(self) -> Iterator[list[Row]]:
        """The decorated rows, CHUNK at a time, oldest first."""
        return self._chunks()

    def rows(self) -> Iterator[Row]:
        for chunk in self.chunks():
            yield from chunk


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

    def parts(self) -> Iterator[Part]:
        """The conversations in scope, ordered by their first message in scope, then id."""
        per_conversation = (
            self.messages()
            .values("conversation_id")
            .annotate(first=Min("sent_at"), last=Max("sent_at"), n=Count("id"))
            .order_by(F("first").asc(nulls_first=True), "conversation_id")
        )
        stats = list(per_conversation)
        conversations = Conversation.objects.select_related("channel", "participant").in_bulk(
            [s["conversation_id"] for s in stats]
        )
        names = latest_names({c.participant_id for c in conversations.values() if c.participant_id})
        for stat in stats:
            convo = conversations[stat["conversation_id"]]
            scoped = self.messages().filter(conversation=convo)
            yield Part(
                conversation=convo,
                name=names.get(convo.participant_id or 0, ""),
                count=stat["n"],
                first_at=stat["first"],
                last_at=stat["last"],
                _chunks=lambda convo=convo, scoped=scoped: self._chunks(convo, scoped),  # type: ignore[misc]
            )

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
            yield decorate(convo, chunk, upto=self.tree_size)
            last = chunk[-1]
