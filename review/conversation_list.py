"""The conversation list: filters, keyset pages over the summaries the sequencer keeps, and the
names, tags and open flags of one page. A page costs the same at any depth: it seeks by
(last message time, conversation id) on an index instead of counting past earlier pages."""

from dataclasses import dataclass, field

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import QueryDict
from django.utils.dateparse import parse_datetime

from access.boundary import whole_number
from messaging.models import ConversationSummary
from review.models import ConversationTag, Flag, Tag
from review.search import latest_name, participant_conversations

PAGE = 50
OPEN_STATES = [Flag.State.OPEN, Flag.State.ESCALATED]


@dataclass(frozen=True)
class Filters:
    channel: int | None = None
    who: str = ""
    tag: int | None = None
    open_flags: bool = False
    oldest: bool = False
    after: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> "Filters":
        channel, tag = query.get("channel", ""), query.get("tag", "")
        return cls(
            channel=whole_number(channel),
            who=query.get("who", "").strip()[:100],
            tag=whole_number(tag),
            open_flags=query.get("flagged") == "open",
            oldest=query.get("sort") == "oldest",
            after=query.get("after", "")[:100],
        )


@dataclass
class Page:
    rows: list[ConversationSummary] = field(default_factory=list)
    next_cursor: str = ""


def page(filters: Filters, size: int = PAGE) -> Page:
    summaries = _filtered(filters).filter(_cursor(filters.after, filters.oldest))
    order = (
        (F("last_message_at").asc(nulls_first=True), "conversation_id")
        if filters.oldest
        else (F("last_message_at").desc(nulls_last=True), "-conversation_id")
    )
    found = list(summaries.order_by(*order)[: size + 1])
    rows = found[:size]
    _details(rows)
    if len(found) <= size:
        return Page(rows)
    last = rows[-1]
    stamp = last.last_message_at.isoformat() if last.last_message_at else ""
    return Page(rows, f"{stamp}|{last.conversation_id}")


def _filtered(filters: Filters) -> QuerySet[ConversationSummary]:
    summaries = (
        ConversationSummary.objects.select_related(
            "conversation__participant", "channel", "last_message"
        )
        # the list shows the last message's direction and first words: not its raw payload or
        # search vector, the bulk of each row read
        .defer("last_message__payload", "last_message__search")
        .annotate(
            latest_name=latest_name("conversation__participant_id"),
            open_flag_count=_open_flags(),
        )
    )
    if filters.channel is not None:
        summaries = summaries.filter(channel_id=filters.channel)
    if filters.who:
        matching = participant_conversations(filters.who).values("pk")
        summaries = summaries.filter(conversation__in=matching)
    if filters.tag is not None:
        tagged = ConversationTag.objects.filter(tag_id=filters.tag).values("conversation")
        summaries = summaries.filter(conversation__in=tagged)
    if filters.open_flags:
        flagged = Flag.objects.filter(state__in=OPEN_STATES).values("conversation")
        summaries = summaries.filter(conversation__in=flagged)
    return summaries


def _cursor(value: str, oldest: bool) -> Q:
    """Rows after the cursor in the list's order; conversations with no dated message sort
    last (newest first) or first (oldest first)."""
    stamp, _, pk_text = value.partition("|")
    pk = whole_number(pk_text)
    if pk is None:
        return Q()
    try:
        moment = parse_datetime(stamp) if stamp else None
    except ValueError:  # well formed but no such moment (2026-02-30): the first page
        return Q()
    if moment is None:
        if oldest:
            return Q(last_message_at__isnull=True, conversation_id__gt=pk) | Q(
                last_message_at__isnull=False
            )
        return Q(last_message_at__isnull=True, conversation_id__lt=pk)
    if oldest:
        return Q(last_message_at__gt=moment) | Q(last_message_at=moment, conversation_id__gt=pk)
    return (
        Q(last_message_at__lt=moment)
        | Q(last_message_at=moment, conversation_id__lt=pk)
        | Q(last_message_at__isnull=True)
    )


def _open_flags() -> Coalesce:
    flags = (
        Flag.objects.filter(conversation_id=OuterRef("conversation_id"), state__in=OPEN_STATES)
        .order_by()
        .values("conversation_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(flags), 0)


def _details(rows: list[ConversationSummary]) -> None:
    """Tags for one page (one query); names and open-flag counts came with the rows."""
    ids = [row.conversation_id for row in rows]
    tags: dict[int, list[Tag]] = {}
    if ids:
        applied = ConversationTag.objects.filter(conversation_id__in=ids).select_related("tag")
        for each in applied:
            tags.setdefault(each.conversation_id, []).append(each.tag)
    for row in rows:
        row.name = row.latest_name or ""  # type: ignore[attr-defined]
        row.tag_list = tags.get(row.conversation_id, [])  # type: ignore[attr-defined]
        row.open_flags = row.open_flag_count  # type: ignore[attr-defined]
