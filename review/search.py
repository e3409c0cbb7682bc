"""Search over the archive: one query box in web-search syntax, and filters.

The query runs as PostgreSQL full text (`websearch_to_tsquery('simple', …)`: quoted phrases, OR,
-exclusion) against `messaging_message.search`, a stored generated tsvector of the text, caption
and file name with a GIN index. Participant names and numbers are matched separately with
trigram indexes (a partial number such as "7700 90" finds +44 7700 900123), and listed as the
conversations they belong to. Results are newest first by default; ranking by relevance is a
choice, among the newest matches.
"""

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.functions import Cast, Coalesce, NullIf
from django.forms.models import ModelChoiceIterator
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from access import boundary
from archive import prepared
from messaging.models import (
    MEDIA_TYPES,
    PHONE_EXPORT,
    SEARCH_CHANNEL,
    WORD_PAIRS,
    Channel,
    Conversation,
    Direction,
    ImportedMessage,
    Message,
    ParticipantProfile,
)
from review import phrases
from review.models import ConversationTag, Flag, MessageTag, SavedSearch, Tag
from review.provenance import Imported, author_name, chat_name_in, imported, linked
from review.transcript import ASC, DESC

PAGE_SIZE = 25
COUNT_CAP = 1000  # counting every match of a common word costs more than it tells
# Relevance ranks the newest matches only (see ranked): each costs a ts_rank over its vector,
# ~20-30 us read in time order, so 5,000 took 100-400 ms at 1,000,000 messages and 1,000 takes
# 20-30 ms (tests/performance/test_bench_review.py). A ranked index (RUM) was slower still.
RELEVANCE_WITHIN = 1_000
COUNT_LATER_BUDGET_MS = "3000"  # the longest the count asked for afterwards may take (count)
SEARCH_WORK_MEM = "64MB"  # keeps a common word pair's bitmap exact (_page), and a span's
MAX_PAGE = 400
_START, _STOP = "\x02", "\x03"  # headline markers no escaping can produce
_NUMBER = re.compile(r"^\+?[\d\s().-]{3,}$")
_DIGITS = re.compile(r"\d{3,}")
_PHRASE = re.compile(r'"|\w-\w')  # websearch_to_tsquery makes a phrase of both

TYPE_CHOICES = [
    ("", "any type"),
    *[
        (kind, kind)
        for kind in (
            "text",
            "image",
            "video",
            "audio",
            "document",
            "sticker",
            "location",
            "contacts",
            "interactive",
            "button",
            "edit",
            "system",
            "unsupported",
        )
    ],
]


# What a channel's label shows (Channel.__str__), never its access token.
CHANNEL_SHOWN = ("id", "name", "display_number", "phone_number_id")
TAG_SHOWN = ("id", "name", "colour", "description")
SAVED_SHOWN = ("id", "name", "query")


def _listed(fields: tuple[str, ...], table: str, order: str, where: str = "") -> str:
    """A subquery of _LISTS: `fields` of each row of `table` (as x) as a JSON array, in
    `order`, the whole list as JSON text. Our own columns and tables, never a request's."""
    rows = f"json_build_array({', '.join(f'x.{name}' for name in fields)}) ORDER BY {order}"
    return f"(SELECT coalesce(json_agg({rows}), '[]')::text FROM {table} x {where})"  # noqa: S608


# The search page's three short lists in one statement, one round trip where they were three:
# the channels and tags its filters offer (SearchForm) and the user's saved searches, each in
# the order of the ORM's queryset it replaces (tests/review/test_search_lists.py compares them).
# Each of the three querysets cost the page 0.3-0.9 ms at 10M, most of it the ORM around a
# statement of a few rows and its round trip (docs/SCALE.md §7u). json_agg as text: JSON keeps
# these ints and strings exactly.
_LISTS = (
    f"SELECT {_listed(CHANNEL_SHOWN, 'messaging_channel', 'x.name, x.id')},"
    f" {_listed(TAG_SHOWN, 'review_tag', 'x.name')},"
    f" {_listed(SAVED_SHOWN, 'review_savedsearch', 'x.name, x.id', 'WHERE x.user_id = %s')}"
)


@dataclass(frozen=True)
class Lists:
    """The search page's lists (page_lists): its filters' channels and tags, and the saved
    searches of whoever asks. Model instances holding only the fields shown (the rest deferred,
    as `only()` leaves them)."""

    channels: list[Channel]
    tags: list[Tag]
    saved: list[SavedSearch]


def page_lists(user_id: Any) -> Lists:
    """The search page's lists for the user `user_id`, in one statement (_LISTS)."""
    with connection.cursor() as cursor:
        # our own statement, the user's id its parameter; planned once a database session
        prepared.execute(cursor, _LISTS, [user_id])
        channels, tags, saved = cursor.fetchone()
    return Lists(
        channels=[_instance(Channel, CHANNEL_SHOWN, row) for row in json.loads(channels)],
        tags=[_instance(Tag, TAG_SHOWN, row) for row in json.loads(tags)],
        saved=[_instance(SavedSearch, SAVED_SHOWN, row) for row in json.loads(saved)],
    )


def _instance(model: Any, names: tuple[str, ...], row: list[Any]) -> Any:
    """`model` as the ORM loads it with only the fields `names` (the row's values, in that
    order); from_db takes them in the model's own order of fields."""
    value = dict(zip(names, row, strict=True))
    loaded = [f.attname for f in model._meta.concrete_fields if f.attname in value]
    return model.from_db(connection.alias, loaded, [value[name] for name in loaded])


class _ListedIterator(ModelChoiceIterator):  # type: ignore[type-arg]
    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for row in self._rows():
            yield self.choice(row)

    def __len__(self) -> int:
        return len(self._rows()) + (self.field.empty_label is not None)

    def __bool__(self) -> bool:
        return self.field.empty_label is not None or bool(self._rows())

    def _rows(self) -> list[Any]:
        field: ListedChoiceField = self.field  # type: ignore[assignment]
        return field.rows()


class ListedChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    """A ModelChoiceField over a short list (channels, tags) read once per form, in one plain
    statement. The stock field reads its queryset through a server-side cursor to draw the
    options (DECLARE, FETCH, CLOSE: three round trips) and once more to clean the value given:
    half the statements of a search page, for a list of a few rows."""

    iterator = _ListedIterator

    def __init__(self, queryset: QuerySet[Any], **kwargs: Any) -> None:
        self._rows: list[Any] | None = None
        super().__init__(queryset, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> "ListedChoiceField":
        copied: ListedChoiceField = super().__deepcopy__(memo)
        copied._rows = None  # each form reads its own
        return copied

    def rows(self) -> list[Any]:
        if self._rows is None:
            self._rows = list(self.queryset or [])
        return self._rows

    def preload(self, rows: list[Any]) -> None:
        """The list as read already, with others, by one statement (page_lists)."""
        self._rows = list(rows)

    def to_python(self, value: Any) -> Any:
        if value in self.empty_values:
            return None
        self.validate_no_null_characters(value)
        key = self.to_field_name or "pk"
        if self.queryset is not None and isinstance(value, self.queryset.model):
            value = getattr(value, key)
        for row in self.rows():
            if str(getattr(row, key)) == str(value):
                return row
        raise ValidationError(
            self.error_messages["invalid_choice"], code="invalid_choice", params={"value": value}
        )


class _FixedSelect(forms.Select):
    def __deepcopy__(self, memo: dict[int, Any]) -> "_FixedSelect":
        copied: _FixedSelect = forms.Widget.__deepcopy__(self, memo)  # its attributes, not choices
        return copied


class FixedChoiceField(forms.ChoiceField):
    """A ChoiceField whose choices are its declaration's for good (direction, type, flags,
    order): every form's copy of it, and of its <select>, shares them. Django deep-copies each
    field of each form it makes, and copying these lists of pairs again (the widget normalising
    its copy) every page was about a third of the search form's making (docs/SCALE.md §7w).
    Choices set on a copy replace its own; nothing changes a list of them in place."""

    widget = _FixedSelect

    def __deepcopy__(self, memo: dict[int, Any]) -> "FixedChoiceField":
        copied: FixedChoiceField = forms.Field.__deepcopy__(self, memo)  # the widget copied
        copied._choices = self._choices  # type: ignore[attr-defined]  # ChoiceField's, untyped
        return copied


class SearchForm(forms.Form):
    """The search page's query string: what is valid, with a message for what is not."""

    q = forms.CharField(required=False, max_length=500, label="Search")
    channel = ListedChoiceField(
        Channel.objects.only(*CHANNEL_SHOWN).order_by("name", "pk"),
        required=False,
        empty_label="any",
    )
    participant = forms.CharField(
        required=False, max_length=100, help_text="A name or part of a number."
    )
    direction = FixedChoiceField(
        choices=[("", "either"), *Direction.choices], required=False, label="Direction"
    )
    type = FixedChoiceField(choices=TYPE_CHOICES, required=False)
    date_from = boundary.DateField(required=False, label="From")
    date_to = boundary.DateField(required=False, label="To")
    tag = ListedChoiceField(Tag.objects.all(), required=False, empty_label="any")
    flag = FixedChoiceField(
        choices=[
            ("", "any"),
            ("open", "open flag"),
            ("decided", "decided flag"),
            ("flagged", "any flag"),
            ("none", "never flagged"),
        ],
        required=False,
        label="Flags",
    )
    attachment = forms.BooleanField(required=False, label="Has an attachment")
    sort = FixedChoiceField(
        choices=[
            ("newest", "newest first"),
            ("oldest", "oldest first"),
            ("relevance", f"best match (of the newest {RELEVANCE_WITHIN:,})"),
        ],
        required=False,
    )
    page = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE)

    def __init__(
        self, *args: Any, user: Any = None, lists: "Lists | None" = None, **kwargs: Any
    ) -> None:
        """`user`: whoever asks, whom the filters of FILTERS may restrict (the holds they may
        see); None for the domain code that re-reads a search already allowed (a hold's own
        scope, a stored export). `lists`: the channels and tags as the search page read them
        (page_lists); else each field reads its own."""
        super().__init__(*args, **kwargs)
        if lists is not None:
            self.fields["channel"].preload(lists.channels)  # type: ignore[attr-defined]
            self.fields["tag"].preload(lists.tags)  # type: ignore[attr-defined]
        fields = list(self.fields.items())
        at = [name for name, _ in fields].index("sort")  # the upper floors' filters go before it
        extra = [(f.name, f.field(user)) for f in FILTERS.values()]
        self.fields = dict(fields[:at] + extra + fields[at:])

    def read_choices(self) -> None:
        """Every list its fields draw, read now if not yet (the hold filter's, for whoever may
        see holds): the page's template then reads nothing while the page's access event is
        under way (access.recording), which a statement there would fail."""
        for drawn in self.fields.values():
            if isinstance(drawn, ListedChoiceField):
                drawn.rows()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        if data.get("sort") == "relevance" and not (data.get("q") or "").strip():
            data["sort"] = "newest"
        return data


@dataclass(frozen=True)
class Filter:
    """A search filter an upper floor adds (retention's legal hold): its form field for a user
    (or None: no restriction), and how a cleaned value narrows the messages."""

    name: str
    field: Callable[[Any], forms.Field]
    apply: Callable[[QuerySet[Message], Any], QuerySet[Message]]


# Registered in the adding app's AppConfig.ready() (retention/apps.py); retention.checks fails if
# its filter is missing, since a query naming it would otherwise be silently wider.
FILTERS: dict[str, Filter] = {}


def add_filter(search_filter: Filter) -> None:
    FILTERS[search_filter.name] = search_filter


def parameter_names() -> set[str]:
    """Every parameter the search page reads: its own fields and the registered filters'."""
    return set(SearchForm.base_fields) | set(FILTERS)


@dataclass(frozen=True, slots=True)
class Shown:
    """A hit's message as the search page (review_tags.search_hits) and the API (api/search.py)
    show it: a row of `hits`' statement, not a Message with its conversation, participant and
    channel (building those four models for 25 rows took ~1 ms of every page). Not the search
    vector, the channel's access token or any column neither reads."""

    pk: int
    entry_id: int
    channel_id: int
    wamid: str
    conversation_id: int
    direction: str
    source: str
    type: str
    sent_at: datetime | None
    text: str
    payload: dict[str, Any]  # a phone export's facts only, under "import" (provenance.imported)
    conversation_key: str
    participant_id: int | None
    group_id: str
    wa_id: str  # the participant's number, "" for a group or an unmapped chat
    channel_name: str


@dataclass
class Hit:
    message: Shown
    snippet: SafeString
    name: str = ""  # the client's latest name
    # From a phone export (review/provenance.py): the entry, and the exports that repeat it.
    imported: Imported | None = None
    also_in: list[Imported] = field(default_factory=list)
    chat: str = ""  # an unmapped one-to-one chat's name, as the export gave it


NAME_WORD_MIN = 3  # a trigram: what the name index (profile_name_trgm) can look up


@dataclass(frozen=True, slots=True)
class Person:
    """A conversation `people` found, as the search page shows it (review_tags.search_people)."""

    pk: int
    wa_id: str
    channel_name: str
    message_count: int | None  # None: not summarised yet
    last_message_at: datetime | None


@dataclass
class Results:
    hits: list[Hit] = field(default_factory=list)
    total: int = 0
    capped: bool = False  # "more than `total`"
    # the page did not count: `total` is what it has seen, and it asks for the count in a request
    # of its own (`count`)
    counting: bool = False
    page: int = 1
    has_next: bool = False
    people: list[Person] = field(default_factory=list)


# The channel as search filters it: checked on the rows the other conditions find (the words'
# GIN index), or read with the time from message_channel_sent (messaging 0022: the newest
# messages of one channel, not through a burst on another), never as a bitmap of a whole
# channel. At 10M messages the planner ANDed the GIN's few hundred rows of a rare word with a
# bitmap of the whole channel (3.2M rows, 350-540 ms, page and count alike) from the foreign
# key's index on `channel_id`, which `+ 0` does not match; messaging 0019's statistics on it
# give the planner the channel's true share of the messages (docs/SCALE.md §7d, §7e). The
# expression is messaging's SEARCH_CHANNEL, the one message_channel_sent indexes.


# The channel as no index reads it: checked on each row the other conditions' index gives. A
# common word pair's count in a channel (search.count) was planned as its pairs' bitmap ANDed
# with one of the whole channel from message_channel_sent: "to and" in channel 1 at 10M, 370,330
# rows of the pair with 5,869,241 of the channel (488 ms of a 650 ms count); the channel checked
# on the pair's rows, 156 ms (docs/SCALE.md §7u).
ROW_CHANNEL = ExpressionWrapper(F("channel_id") - 0, output_field=BigIntegerField())


def in_channel(
    messages: QuerySet[Message], channel: Any, *, gin: bool = True, on_rows: bool = False
) -> QuerySet[Message]:
    """`messages` of one channel (a Channel or its id), as SEARCH_CHANNEL; `gin`: as the words'
    GIN index reads it too; `on_rows`: as ROW_CHANNEL, which no index reads.

    message_channel_search holds SEARCH_CHANNEL beside the words (btree_gin, messaging 0023),
    but its operator class compares a bigint with a bigint only. Written as an integer (`gin`
    False: filter_messages), the channel is read from message_channel_sent or checked on the
    rows, as every plan was measured; written as a bigint, the GIN reads it with the words, for
    a phrase's one statement (phrase_ids) and its count. Never both in one statement: the
    planner keeps one of two equal constants, the integer."""
    pk = getattr(channel, "pk", channel)
    if on_rows:
        return messages.alias(row_channel=ROW_CHANNEL).filter(row_channel=pk)
    value = Cast(Value(pk), BigIntegerField()) if gin else pk
    return messages.alias(search_channel=SEARCH_CHANNEL).filter(search_channel=value)


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def filter_messages(
    messages: QuerySet[Message], data: dict[str, Any], *, gin: bool = False, on_rows: bool = False
) -> QuerySet[Message]:
    """Every filter but the text query (exports reuse this for "the current search"); `gin`:
    the channel written for the words' index (in_channel), not for message_channel_sent;
    `on_rows`: for no index (ROW_CHANNEL)."""
    messages = messages.exclude(type__in=("reaction", "revoke"))
    if channel := data.get("channel"):
        messages = in_channel(messages, channel, gin=gin, on_rows=on_rows)
    if data.get("direction"):
        messages = messages.filter(direction=data["direction"])
    if data.get("type"):
        messages = messages.filter(type=data["type"])
    if data.get("date_from"):
        messages = messages.filter(sent_at__gte=_day_start(data["date_from"]))
    if data.get("date_to"):
        messages = messages.filter(sent_at__lt=_day_start(data["date_to"] + timedelta(days=1)))
    if data.get("attachment"):
        messages = messages.filter(type__in=MEDIA_TYPES)
    if data.get("participant"):
        matching = participant_conversations(data["participant"]).values("pk")
        messages = messages.filter(conversation__in=matching)
    if data.get("tag"):
        messages = messages.filter(
            Exists(MessageTag.objects.filter(message=OuterRef("pk"), tag=data["tag"]))
            | Exists(
                ConversationTag.objects.filter(
                    conversation=OuterRef("conversation"), tag=data["tag"]
                )
            )
        )
    if data.get("flag"):
        messages = _flag_filter(messages, data["flag"])
    for name, search_filter in FILTERS.items():
        if data.get(name):
            messages = search_filter.apply(messages, data[name])
    return messages


def _flag_filter(messages: QuerySet[Message], state: str) -> QuerySet[Message]:
    open_states = [Flag.State.OPEN, Flag.State.ESCALATED]
    on_message = Flag.objects.filter(message=OuterRef("pk"))
    if state == "open":
        return messages.filter(Exists(on_message.filter(state__in=open_states)))
    if state == "decided":
        return messages.filter(Exists(on_message.exclude(state__in=open_states)))
    if state == "flagged":
        return messages.filter(Exists(on_message))
    return messages.filter(~Exists(on_message))


def text_query(q: str) -> SearchQuery:
    return SearchQuery(once(q), search_type="websearch", config="simple")


def once(q: str) -> str:
    """`q` without a word it repeats, when it is plain words (no quotes, OR or exclusion), which
    websearch_to_tsquery ANDs: the same query. PostgreSQL estimates "wume wume" ('wume' &
    'wume') as two independent words, 65 times rarer than "wume" (2,105 rows for 134,435 at
    10M messages), and read its every row from the GIN index (440-580 ms) instead of the newest
    messages backwards (docs/SCALE.md §7e). Only a word repeated exactly: PostgreSQL's lower
    case need not be Python's."""
    words = q.split()
    if any(c in q for c in '"-') or any(word.lower() == "or" for word in words):
        return q
    return q if len(set(words)) == len(words) else " ".join(dict.fromkeys(words))


def phrase_pairs(q: str) -> Func | None:
    """The condition on messaging's word-pair index that the phrases `q` requires imply
    (review/phrases.py), or None. PostgreSQL parses `q` as the search does, so the pairs are
    those of the very query that runs."""
    return _holds(WORD_PAIRS, phrases.pairs_query(_parsed(q)))


# A phrase's short word is read from the words' index with its long words (phrases.long_words)
# when the planner expects it in at most PHRASE_RARE_SHORT rows, or in at most
# PHRASE_SHORT_OVER_LONG times the rows of its rarest long word. The index reads a word's
# posting list at ~11 ns a row at 10M ("the", 5M rows, 57 ms), and puts each row it gives into
# the statement's bitmap at ~170 ns ("morning", 752,217 rows, 132 ms; with "gbp", 182,184 rows,
# the two give 10,340 rows in 21 ms): a short word pays for itself when it is at most ~15 times
# as common as the long word, and "the" with "nakuwou" (63 times) did not (66.7 against 27.9
# ms, docs/SCALE.md §7k). A rare one ("gubu", 32,481 rows) always: "adviser gubu" in channel 2,
# 185 -> 30 ms (418 before Every.rest).
PHRASE_RARE_SHORT = 100_000
PHRASE_SHORT_OVER_LONG = 10
# A short word left out by those bounds is still read with the long words when the planner
# expects it in at most PHRASE_SHORT_MOST rows and, with it, the phrase's words in at most
# PHRASE_WHOLE_BELOW rows (in its channel, when it has one): then the phrase is one statement
# over the whole archive (Matching.fewer, phrase_ids), where its long words alone would have
# been read span by span. At 10M "maicaizi that" in channel 2 ("that" 1.4M rows, "maicaizi"
# 107k, 29,621 of them in the channel; both in the channel 5,094): two spans of 42 and 62 ms,
# each ANDing the long word's bitmap with one of its channel's time, became one statement of
# 41 ms. The index reads the short word's posting list at ~7 ns a row: "and" (5.8M rows) with
# "mojuwu" took 78 ms where its spans found the page in 39; "i" (4.3M) with "jaicaina" 72
# against 49. 100 phrases (bench_phrases), docs/SCALE.md §7u.
PHRASE_SHORT_MOST = 4_000_000


def _cheap_short_words(parsed: str) -> tuple[list[str], dict[str, float]]:
    """The short words of a phrase without pairs worth reading from the words' index with its
    long words (PHRASE_SHORT_OVER_LONG), and each word's expected rows: one EXPLAIN a word,
    none for a phrase without a short word."""
    short = phrases.short_words(parsed)
    if not short:
        return [], {}
    long = phrases.long_words(parsed)
    rows = {word: _word_rows(word) for word in (*long, *short)}
    bound = max(PHRASE_RARE_SHORT, PHRASE_SHORT_OVER_LONG * min((rows[w] for w in long), default=0))
    return [word for word in short if rows[word] <= bound], rows


def _word_rows(word: str) -> float:
    """The messages the planner expects to hold `word`."""
    return planned_rows(Message.objects.filter(_holds(F("search"), phrases.all_of([word]))))


def _parsed(q: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT websearch_to_tsquery('simple', %s)::text", [q])
        (parsed,) = cursor.fetchone()
    return str(parsed)


def _holds(vector: Any, wanted: str | None) -> Func | None:
    """`vector @@ wanted::tsquery`, as the vector's GIN index reads it; None for no `wanted`."""
    if wanted is None:
        return None
    return Func(
        vector,
        Func(Value(wanted), template="%(expressions)s::tsquery"),
        template="%(expressions)s",
        arg_joiner=" @@ ",
        output_field=BooleanField(),
    )


def _matched(query: SearchQuery) -> Func:
    """`search @@ query` as a function call, which no index serves."""
    return Func(F("search"), query, function="ts_match_vq", output_field=BooleanField())


@dataclass(frozen=True)
class Matching:
    """How `matching` wrote a text query: the messages the filters alone select (for a phrase
    without pairs, what `walked` reads), the query (None: no text), whether it holds a phrase,
    and whether its rows come from the word pairs' index."""

    filtered: QuerySet[Message]
    query: SearchQuery | None = None
    phrase: bool = False
    pairs: bool = False
    indexed: QuerySet[Message] | None = None  # what its index gives, unfiltered (planned_rows)
    # A phrase read from the words' index in a channel: the channel, and the same matches with
    # the channel written for that index (in_channel), for phrase_ids' one statement
    channel: Any = None
    in_gin: QuerySet[Message] | None = None
    indexed_rows: float | None = None  # planned_rows(indexed), when matching knew it already
    # A phrase without pairs whose short words were left out of its index's condition: the
    # same matches with those of them under PHRASE_SHORT_MOST read from the index too (its
    # channel written for the index, as in_gin), and what that index gives of all, unfiltered
    fewer: QuerySet[Message] | None = None
    fewer_indexed: QuerySet[Message] | None = None
    # A text query in a channel: the same matches with the channel checked on the rows the
    # query's index gives (ROW_CHANNEL), for its count (count, _count_on_rows). Built when the
    # count asks: building it cost every search page in a channel ~0.1 ms of matching()'s 0.49
    on_rows: Callable[[], QuerySet[Message]] | None = None

    def narrowed(self, condition: Q) -> "Matching":
        """The same with its messages narrowed by `condition` (the API's cursor), in every
        statement phrase_ids may read them from."""
        in_gin = self.in_gin.filter(condition) if self.in_gin is not None else None
        fewer = self.fewer.filter(condition) if self.fewer is not None else None
        return replace(self, filtered=self.filtered.filter(condition), in_gin=in_gin, fewer=fewer)


def matching(
    messages: QuerySet[Message], data: dict[str, Any]
) -> tuple[QuerySet[Message], Matching]:
    """The messages a search's filters (filter_messages) and text query select, the text written
    for the index that reads the fewest rows; the search page, the API, holds and exports alike.

    A phrase's rows are found by its word pairs (phrase_pairs). A phrase that implies none (one
    under OR, or of long words) is checked on every row holding all its words. The channel is
    never read as a bitmap (SEARCH_CHANNEL), phrases included: at 10M the channel index's bitmap
    of a third of the archive (3.16M rows, 92 ms of a 148 ms statement for "i sedou") cost a
    phrase's spans more than the position checks it saved (phrase + channel, search() p95 315
    -> 196 ms, docs/SCALE.md §7f). Found by its pairs, the whole query is checked on the rows
    they give, written so that the words' own index is not read too (for "the and", 5.3M rows
    to AND with 0.7M pairs). A phrase without pairs but with a short word is read through its
    long words alone (phrases.long_words; "nakuwou the" at 10M, each span's statement 66.7 ->
    27.9 ms, docs/SCALE.md §7k), and the whole query checked on their rows. Such a phrase in a
    channel is also written with its channel for the words' index (Matching.in_gin, in_channel),
    which phrase_ids reads in one statement when its rows there are few (§7s). Its short words
    that were left out are also written into the index's condition (Matching.fewer), which
    phrase_ids reads in one statement when the phrase is rare with them (PHRASE_SHORT_MOST)."""
    q = (data.get("q") or "").strip()
    phrase = bool(_PHRASE.search(q))
    parsed = _parsed(q) if phrase else ""
    pairs = _holds(WORD_PAIRS, phrases.pairs_query(parsed)) if phrase else None
    words, indexed_rows, fewer_words = None, None, None
    if phrase and not pairs:
        cheap, word_rows = _cheap_short_words(parsed)
        kept = phrases.long_words(parsed, cheap)
        words = _holds(F("search"), phrases.all_of(kept))
        if len(kept) == 1:  # what its index gives: the word's own rows, known already
            indexed_rows = word_rows.get(kept[0])
        also = [w for w in phrases.short_words(parsed) if w not in cheap]
        also = [w for w in also if word_rows[w] <= PHRASE_SHORT_MOST]
        if kept and also:
            fewer_words = _holds(F("search"), phrases.all_of([*kept, *also]))
    filtered = filter_messages(messages, data)
    if not q:
        return filtered, Matching(filtered)
    query = text_query(q)

    def found_in(
        rows: QuerySet[Message], holding: Func | None = words
    ) -> tuple[QuerySet[Message], QuerySet[Message]]:
        """`rows` narrowed to the query's matches, and what the query's index gives of all;
        `holding`: the words the index is asked for (for a phrase without pairs)."""
        if pairs is not None:
            return rows.filter(pairs, _matched(query)), Message.objects.filter(pairs)
        if holding is not None:
            return rows.filter(holding, _matched(query)), Message.objects.filter(holding)
        return rows.filter(search=query), Message.objects.filter(search=query)

    found, indexed = found_in(filtered)
    channel = data.get("channel") if phrase and pairs is None else None
    in_gin = filter_messages(messages, data, gin=True) if channel else None
    fewer, fewer_indexed = None, None
    if fewer_words is not None:
        fewer, fewer_indexed = found_in(in_gin if in_gin is not None else filtered, fewer_words)
    how = Matching(
        filtered,
        query,
        phrase=phrase,
        pairs=pairs is not None,
        indexed=indexed,
        channel=channel or None,
        in_gin=found_in(in_gin)[0] if in_gin is not None else None,
        indexed_rows=indexed_rows,
        fewer=fewer,
        fewer_indexed=fewer_indexed,
        on_rows=(
            (lambda: found_in(filter_messages(messages, data, on_rows=True))[0])
            if data.get("channel")
            else None
        ),
    )
    return found, how


def participant_conversations(text: str) -> QuerySet[Conversation]:
    """Conversations whose participant's number contains the digits given, or whose name
    (any name they have shown) contains every word given."""
    text = text.strip()
    conversations = Conversation.objects.filter(participant__isnull=False)
    if _NUMBER.match(text):
        digits = re.sub(r"\D", "", text)
        return conversations.filter(participant__wa_id__contains=digits)
    words = [w for w in re.split(r"\s+", text) if w]
    if not words:
        return conversations.none()
    # One name holding every word; EXISTS rather than a join, so no DISTINCT (which sorted
    # every matching conversation on all its columns before the LIMIT of `people`)
    names = ParticipantProfile.objects.filter(participant=OuterRef("participant"))
    for word in words:
        names = names.filter(name__icontains=word)
    return conversations.filter(Exists(names))


# The conversations of the participants a query names, most recently active first: written by
# hand, as `hits` is, since compiling the ORM's statement and building four models a row took
# ~1.2 of its ~1.9 ms (docs/SCALE.md §7t). {named} is `_named`'s: one name holding every word
# (EXISTS, so no DISTINCT), or a number holding the digits; the trigram indexes on
# upper(name) and wa_id (messaging 0003) serve both.
_PEOPLE = """
SELECT c.id, p.wa_id, ch.name, s.message_count, s.last_message_at
FROM messaging_conversation c
JOIN messaging_participant p ON p.id = c.participant_id
JOIN messaging_channel ch ON ch.id = c.channel_id
LEFT JOIN messaging_conversationsummary s ON s.conversation_id = c.id
WHERE {named}
ORDER BY s.last_message_at DESC NULLS LAST, c.id DESC
LIMIT 10
"""


@dataclass(frozen=True)
class Named:
    """Who a query names, as SQL: `condition` for `_PEOPLE` (on its conversation `c` and
    participant `p`), `anyone` a statement saying whether anybody is named at all, and their
    parameters, the same for both."""

    condition: str
    anyone: str
    params: list[str]


def _named(words: list[str], numbers: list[str]) -> Named | None:
    """A profile name holding every word (case aside), or a number holding any of the digit
    runs; LIKE's own characters in them are matched as themselves. None: no word or number."""
    like = connection.ops.prep_for_like_query
    conditions, checks, params = [], [], []
    if words:
        every = " AND ".join("upper(pp.name) LIKE upper(%s)" for _ in words)
        conditions.append(
            "EXISTS (SELECT FROM messaging_participantprofile pp"
            f" WHERE pp.participant_id = c.participant_id AND {every})"
        )
        checks.append(f"EXISTS (SELECT FROM messaging_participantprofile pp WHERE {every})")
        params += [f"%{like(word)}%" for word in words]
    for number in numbers:
        conditions.append("p.wa_id LIKE %s")
        checks.append("EXISTS (SELECT FROM messaging_participant p WHERE p.wa_id LIKE %s)")
        params.append(f"%{like(number)}%")
    if not conditions:
        return None
    return Named(" OR ".join(conditions), f"SELECT {' OR '.join(checks)}", params)


def people(q: str) -> list[Person]:
    """Conversations with participants the query names: its number-like part, or its plain
    words (quotes, OR and exclusions are full-text syntax and are left out here), if one of
    them has NAME_WORD_MIN letters. The same participants as participant_conversations finds
    for the participant filter."""
    q = q.strip()
    if not q:
        return []
    if _NUMBER.match(q):
        words, numbers = [], [re.sub(r"\D", "", q)]
    else:
        terms = [
            w.strip('"')
            for w in re.split(r"\s+", q)
            if w and not w.startswith("-") and w.upper() != "OR"
        ]
        numbers = [d for w in terms for d in _DIGITS.findall(w)]
        words = [w for w in terms if w and not _DIGITS.search(w)]
        if all(len(w) < NAME_WORD_MIN for w in words):
            # no trigram to look up: "to" or "a" alone would read every profile's name (a
            # sequential scan growing with the clients: 1.7 ms at 2,000). A shorter word
            # still narrows a longer one's names; the participant filter reads any.
            words = []
    named = _named(words, [n for n in numbers if n])
    if named is None:
        return []
    with connection.cursor() as cursor:
        # our own statements: the query gives only parameters. Most words typed into a search
        # name nobody: asking that first (one index probe, 0.17 ms at 10M) spares them
        # _PEOPLE's joins, whose planning alone took 0.65 ms (docs/SCALE.md §7t).
        cursor.execute(named.anyone, named.params)
        if not cursor.fetchone()[0]:
            return []
        cursor.execute(_PEOPLE.format(named=named.condition), named.params)
        return [Person(*row) for row in cursor.fetchall()]


def search(messages: QuerySet[Message], data: dict[str, Any]) -> Results:
    """One page of hits, newest first unless asked otherwise, with a total capped at COUNT_CAP.

    The page is one statement (_page; a phrase that implies no pairs, under OR or with a long
    word, is looked for among the first messages in the page's order, walked, then a span of
    time at a time, _phrase_matches). A page that is the last one knows its total, as does a
    phrase whose spans read the whole archive; any other says "more than" what it has seen and
    asks for the count in a request of its own (`count`, Results.counting), so that its hits
    never wait for it. Counting to 1,001 costs 1,001 divided by the matches' share of the rows,
    or a word's whole posting list, and both grow with the archive: at 10M 2-8 ms for the
    channel alone, a rare word or a common one in a date range, 29-50 ms for a common word or an
    exclusion in a channel, 130-370 ms for an OR, where the page itself takes 0.6-13 ms
    (docs/SCALE.md §7e, §7l, §7m). Folded into the page's statement, the count would make it
    read 1,001 matches in the page's order where it reads 26. For relevance, the ranked
    window's size. The messages are those `matching` selects."""
    q = (data.get("q") or "").strip()
    messages, how = matching(messages, data)
    query = how.query
    sort = data.get("sort") or "newest"
    page = data.get("page") or 1
    start = (page - 1) * PAGE_SIZE
    results = Results(page=page, people=people(q))
    spans: Spans | None = None  # what a phrase read span by span found
    if sort == "relevance" and query is not None:
        ids, counted = ranked(messages, query, start, start + PAGE_SIZE + 1)
        seen = counted if ids or start == 0 else None
    else:
        oldest = sort == "oldest"
        phrase = phrase_ids(messages, how, oldest, start + PAGE_SIZE + 1)
        if phrase is not None:
            first, spans = phrase
            ids = first[start:]
        else:
            ids = _page(messages, oldest, start, pairs=how.pairs)
        last_page = len(ids) <= PAGE_SIZE and (ids or start == 0)
        seen = start + len(ids) if last_page else None
        if seen is None and spans is not None and (spans.whole or spans.found > COUNT_CAP):
            # the spans read the whole archive (every match), or more than the cap already
            # ("more than", uncounted): nothing to count
            seen = spans.found
    results.has_next = len(ids) > PAGE_SIZE
    ids = ids[:PAGE_SIZE]
    if seen is None:  # counted afterwards (`count`), the hits shown meanwhile
        results.counting = True
        seen = start + len(ids)
    results.total, results.capped = shown(seen, counted=not results.counting)
    results.hits = hits(ids, query)
    return results


def shown(seen: int, *, counted: bool = True) -> tuple[int, bool]:
    """(total, more): what a page says of `seen` matches, at most COUNT_CAP; "more than" past
    it, or whenever the count did not finish (`counted` False: `seen` is a lower bound)."""
    return min(seen, COUNT_CAP), seen > COUNT_CAP or not counted


def count(messages: QuerySet[Message], data: dict[str, Any]) -> int | None:
    """The matches of a search up to COUNT_CAP + 1, within COUNT_LATER_BUDGET_MS; None past it.

    What a page that did not know its total (Results.counting) asks for next, in a request of
    its own: the reviewer reads the hits meanwhile. A phrase without pairs in a channel is
    counted with its channel read from the words' index (Matching.in_gin): at 10M "bucukou
    that" in channel 2, 6,974 -> 130 ms; "to details" in channel 1, 1,440 -> 287 ms (docs/
    SCALE.md §7s); and with the short words its index's condition left out, when it has them
    (Matching.fewer): "gracias a" in channel 1, 237 -> 115 ms (§7u). A phrase read by its pairs
    in a channel has its channel checked on the rows they give (ROW_CHANNEL): "to and" in
    channel 1, 650 -> 156 ms; so has any other query in a channel whose index gives few enough
    rows (_count_on_rows): "gadai OR porairijo" in channel 2, 247 -> 35 ms (§7u)."""
    messages, how = matching(messages, data)
    if how.fewer is not None:
        messages = how.fewer
    elif how.in_gin is not None:
        messages = how.in_gin
    elif how.on_rows is not None and (how.pairs or _count_on_rows(how, data)):
        messages = how.on_rows()
    return _capped_count(messages, COUNT_LATER_BUDGET_MS, pairs=how.pairs)


# A count in a channel either scans the messages until its 1,001st match, checking the query on
# each row (~0.68 us a row at 10M: "gadai OR porairijo" in channel 2 read 360,073 rows in 244
# ms), or reads every row its words' index gives into a bitmap (~0.22 us a row: 92,320 in 20.6
# ms) and checks those (~3 us a row) until then. The planner prices the scan's check of `@@` far
# below what it costs, and chooses the scan; with the channel written as ROW_CHANNEL it cannot
# reach the scan's early end and reads the index: that count 247 -> 35 ms, "wume -gadai" in
# channel 3 226 -> 60 ms, but "please" in channel 1 10 -> 515 ms (1.4M rows to read, where the
# scan finds 1,001 in 15,000). So the choice is made here, from the planner's rows. Not for a
# query that excludes a word: the index reads every row of the words it keeps, which the
# planner's rows for the whole query do not say ("-" of a common word: 20 counts, p50 86 -> 113
# ms), so the planner chooses as before (docs/SCALE.md §7u).
COUNT_SCAN_US = 0.68
COUNT_BITMAP_US = 0.22
COUNT_CHECK_US = 3.0


def _count_on_rows(how: Matching, data: dict[str, Any]) -> bool:
    """Whether a search's count in its channel costs less reading its index's rows
    (ROW_CHANNEL) than scanning the messages until its last match, by the planner's rows: three
    EXPLAINs. Never for a query that excludes a word."""
    if how.indexed is None or "!" in _parsed((data.get("q") or "").strip()):
        return False
    channel = data["channel"]
    words = planned_rows(how.indexed)
    everything = max(planned_rows(Message.objects.all()), 1.0)
    share = planned_rows(in_channel(Message.objects.all(), channel, gin=False)) / everything
    wanted = COUNT_CAP + 1
    scan = COUNT_SCAN_US * wanted * everything / max(words * share, 1.0)
    read = COUNT_BITMAP_US * words + COUNT_CHECK_US * wanted / max(share, 1e-6)
    return read < scan


def _page(
    messages: QuerySet[Message], oldest: bool, start: int, *, pairs: bool = False
) -> list[int]:
    """Ids of a page (and one more, to know there is a next) in its order.

    `pairs`: the rows come from the word pairs' index (phrase_pairs), and the statement runs
    with SEARCH_WORK_MEM. A common pair's bitmap (725,928 rows for "the_and" at 10M) overflows
    the default 4 MB and turns lossy: every row of its pages is checked again, its pairs
    computed (968 ms of its count). For words the default stays: with 64 MB the planner ANDed
    a common word's whole GIN bitmap (1M rows, 207 ms) with the last 30 days' 12,000."""
    ordered = messages.order_by(*(ASC if oldest else DESC)).values_list("id", flat=True)
    with pairs_memory(pairs):
        return list(ordered[start : start + PAGE_SIZE + 1])


# Rows of the words' index above which a phrase without pairs is walked before its spans are
# read: each span's statement builds the bitmap of every such row (at 10M 14-18 ms for 80,000,
# "portfolio" 746,000), the walk costs ~21 ms however common the words are (PHRASE_WALK rows).
# 250,000 until the rare phrases' spans got cheaper (PHRASE_WHOLE_BELOW, Every.rest): then 100
# phrases at 10M (bench_phrases, two runs each) took 4.17-4.35 s in all at 250,000, 3.84-3.92 s
# at 150,000 (p95 102.5-103.5 -> 99.2-100.2 ms, the slowest 138-145 -> 158-161 ms); "to details"
# in channel 1 (210,178 rows of "details", its page in the newest 40,000 messages) 95 -> 25 ms.
PHRASE_WALK_ABOVE = 150_000
# Rows of the words' index (in the search's channel, when it has one: in_channel) up to which
# a phrase without pairs is read in one statement over the whole archive, not span by span.
# Each span builds its words' bitmap again and ANDs it with its channel and time's (53 ms for
# the 833,054 rows of the second span of "pension could" in channel 3 at 10M), where one
# statement checks the phrase on each row the index gives (~2 us a row warm): that phrase,
# 2,214 rows in its channel, 105 -> 32 ms. At 15,000 "gaigou the" (16,285 rows in channel 3,
# its page in the last four weeks) was read whole, 32 -> 59 ms; at 10,000 and 5,000 the same
# 20 phrases took the same time. docs/SCALE.md §7s.
PHRASE_WHOLE_BELOW = 10_000
# A row of a phrase's index checked on the heap costs about 30 rows of a span's bitmap of its
# channel's time (at 10M ~2 us against ~65 ns: "pension could" checked 2,214 rows in 5 ms, its
# second span's bitmap of 833,054 rows took 53 ms): after a first span that fell short, the
# rest is read at once when that is cheaper (Every.rest). Half that, since the first span's
# rate of matches is a guess from a few and every further span reads its words' index again:
# 100 phrases at 10M (bench_phrases), the slowest 439 -> 300 ms and all of them 5.8 -> 5.4 s
# (8: the same as 15). "adviser gubu" in channel 2 (16 matches) had read 145,373 rows of its
# long word three times, ANDed with bitmaps of up to 1,695,879 rows of its channel's time.
PHRASE_CHECK_OVER_BITMAP = 15


def planned_rows(rows: QuerySet[Message]) -> float:
    """How many rows the planner expects `rows` to be: for a phrase, those of the index it is
    read from (Matching.indexed), its words' or its word pairs'.

    Above PHRASE_WALK_ABOVE a phrase without pairs is walked (the newest messages, in order)
    before its spans of time, and a phrase with pairs is one ordered statement; below, both go
    to their spans. A rarer phrase without pairs was walked in vain (21 ms of 96-187 for the
    slowest phrases at 10M, where the first span reads more messages than the walk for the same
    cost), while a common one ("portfolio a", 746,353 rows) is found by the walk (73 ms, 174 by
    its spans). A common pair ("the and", 754,786 rows) is found by its ordered statement, a
    rarer one by its spans: ordered, "to what" (13,816 rows) checked the phrase on every row
    holding the pair (101 ms). docs/SCALE.md §7k."""
    return float(_plan(rows.values("id"))["Plan Rows"])


def _plan(rows: QuerySet[Any]) -> dict[str, Any]:
    """The top node of the planner's plan for `rows` (EXPLAIN's JSON: its estimates only)."""
    plan: dict[str, Any] = json.loads(rows.explain(format="json"))[0]["Plan"]
    return plan


# Rows a phrase without pairs is looked for in, in the page's order, before its spans of time:
# ~0.7 us a row read backwards on message_sent at 10M, so at most ~30 ms for a rare phrase
# (which then costs what its spans cost), while a common one stops at its page's last match.
PHRASE_WALK = 40_000
# A walk that found some of the page goes on once, over the rows its matches' density says the
# page needs (1.5 times over), if that is at most this many: "portfolio a" at 10M found 51 of
# the API's 101 in 40,000 rows and 134 in 120,000 (69 ms), where its spans took 330 ms.
PHRASE_WALK_MOST = 160_000


def walked(
    filtered: QuerySet[Message], query: SearchQuery, oldest: bool, want: int
) -> list[int] | None:
    """The first `want` matches of `query` in the page's order, looked for among the first
    PHRASE_WALK of the `filtered` messages (Matching.filtered) in that order, and once more
    among as many as the matches found there say the page needs, up to PHRASE_WALK_MOST; None
    if fewer are there.

    Through the GIN index a phrase's positions are checked on every row holding its words: for
    "confirm to" 300,294 rows at 10M messages (1.2 s), where it is found once in 560 messages
    of its channel. Read in order, with the phrase checked on each row and the walk stopping at
    the `want`-th match, a common phrase costs the rows up to its page's last match."""
    ids = _walk(filtered, query, oldest, want, PHRASE_WALK)
    if ids and len(ids) < want:
        rows = int(1.5 * PHRASE_WALK * want / len(ids))
        if rows <= PHRASE_WALK_MOST:
            ids = _walk(filtered, query, oldest, want, rows)
    return ids if len(ids) >= want else None


def _walk(
    filtered: QuerySet[Message], query: SearchQuery, oldest: bool, want: int, rows: int
) -> list[int]:
    """The first `want` matches of `query` among the first `rows` of `filtered` in the page's
    order (walked)."""
    window = (
        filtered.order_by(*(ASC if oldest else DESC))
        .annotate(hit=_matched(query))
        .values("id", "hit")[:rows]
    )
    sql, params = window.query.sql_with_params()
    with connection.cursor() as cursor:
        # The ORM's own statement, wrapped: nothing from a request is SQL here. A subquery's
        # order is kept by a scan that only filters it, and the LIMIT stops the walk there.
        cursor.execute(f"SELECT id FROM ({sql}) walked WHERE hit LIMIT %s", [*params, want])  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


# The first span of time a phrase is looked for in, newest (or oldest) first; each next span
# is the last times 1.5 x the share of the page it lacked, at least PHRASE_GROWTH[0] times and
# at most PHRASE_GROWTH[1], until it holds the page or is the archive. Each reads only the time
# the last did not. Four weeks first: every span's statement builds the bitmap of its words'
# rows again (at 10M 15-38 ms for 79,000-143,000 rows), so fewer, longer spans cost less (the
# three slowest of 20 phrases, median of 3 runs: 126/113/92 ms from a week, 112/106/99 from two,
# 109/94/89 from four; docs/SCALE.md §7k).
PHRASE_FIRST_SPAN = timedelta(days=28)
PHRASE_GROWTH = (2.0, 8.0)
# A phrase read by its word pairs starts with the time that should hold its page this many
# times over, were its pairs (nearly its matches) spread evenly over time and channels.
PAIRS_SPAN_MARGIN = 4.0
PAIRS_SHORTEST_SPAN = timedelta(hours=1)


@dataclass(frozen=True)
class Spans:
    """What _phrase_matches read: the page's ids, how many matches its spans held, and whether
    they reached the whole archive (then `found` is every match, the undated too: the count)."""

    ids: list[int]
    found: int
    whole: bool


def phrase_ids(
    messages: QuerySet[Message],
    how: Matching,
    oldest: bool,
    want: int,
    *,
    beyond: datetime | None = None,
) -> tuple[list[int], Spans | None] | None:
    """The first `want` ids of a phrase's matches in the page's order, and the spans that found
    them (None: walked); None for a query that is no phrase, or a phrase of a common pair, which
    one ordered statement reads (_page). The search page's and the API's.

    Walked first (the newest `how.filtered` messages, in order) when the planner expects its
    words in more than PHRASE_WALK_ABOVE rows; else, or when the walk falls short, span by span
    (_phrase_matches), a pair's first span sized to hold the page PAIRS_SPAN_MARGIN times over
    (its rows are nearly its matches) rather than four weeks. A phrase without pairs whose
    words the planner expects in at most PHRASE_WHOLE_BELOW rows, in the whole archive or in
    its channel, is one span: the whole archive, its channel read from the words' index with
    them (`how.in_gin`); so is one that is that rare with the short words its index's
    condition left out (`how.fewer`, _fewer), which is asked before any walk. `beyond`: the
    time the spans start from instead of the archive's edge (the API's cursor; `messages`,
    `how.filtered`, `how.in_gin` and `how.fewer` already hold only what comes after it)."""
    query = how.query
    indexed = how.indexed if query is not None and how.phrase else None
    if query is None or indexed is None:
        return None
    rows = how.indexed_rows if how.indexed_rows is not None else planned_rows(indexed)
    common = rows > PHRASE_WALK_ABOVE
    if how.pairs and common:
        return None
    fewer = _fewer(how) if rows > PHRASE_WHOLE_BELOW else None
    first = walked(how.filtered, query, oldest, want) if common and fewer is None else None
    if first is not None:
        return first, None
    if how.pairs:
        spans = _phrase_matches(messages, oldest, want, rows, beyond=beyond)
        return spans.ids, spans
    channel = (
        in_channel(Message.objects.all(), how.channel) if how.channel else Message.objects.all()
    )
    if fewer is not None:
        every = Every(fewer[0], fewer[1], channel)
    else:
        in_rows = rows  # the rows its index gives in its channel
        if how.channel is not None and rows > PHRASE_WHOLE_BELOW:
            in_rows = planned_rows(in_channel(indexed, how.channel))
        every = Every(how.in_gin if how.in_gin is not None else messages, in_rows, channel)
    spans = _phrase_matches(messages, oldest, want, beyond=beyond, every=every)
    return spans.ids, spans


def _fewer(how: Matching) -> tuple[QuerySet[Message], float] | None:
    """A phrase's matches read with the short words its index's condition left out
    (Matching.fewer, PHRASE_SHORT_MOST), and the rows the planner expects that index to give
    (in its channel, when it has one), when those are at most PHRASE_WHOLE_BELOW: then one
    statement over the whole archive reads them, before any walk or span. One EXPLAIN."""
    if how.fewer is None or how.fewer_indexed is None:
        return None
    indexed = how.fewer_indexed
    rows = planned_rows(in_channel(indexed, how.channel) if how.channel is not None else indexed)
    return (how.fewer, rows) if rows <= PHRASE_WHOLE_BELOW else None


@dataclass(frozen=True)
class Every:
    """A phrase's matches read in one statement (phrase_ids): the statement, the rows the
    planner expects its index to give, and the messages of its channel (or all of them)."""

    matches: QuerySet[Message]
    rows: float
    channel: QuerySet[Message]

    def first(self) -> bool:
        """Read at once, before any span: its index gives few rows."""
        return self.rows <= PHRASE_WHOLE_BELOW

    def rest(self, read: timedelta, left: timedelta, found: int, want: int) -> bool:
        """Read at once after a first span (`read` of the archive's time, `left` unread) that
        found `found` of the `want` matches: when checking each of its rows costs less than
        the bitmaps of the channel's time the spans are expected to build to find the rest
        (at the first span's rate of matches, or all that is left)."""
        need = left if found == 0 else min(left, read * (want - found) / found)
        channel_rows = planned_rows(self.channel) * (need / (read + left))
        return self.rows * PHRASE_CHECK_OVER_BITMAP < channel_rows


def _phrase_matches(
    messages: QuerySet[Message],
    oldest: bool,
    want: int,
    pairs_rows: float | None = None,
    *,
    beyond: datetime | None = None,
    every: "Every | None" = None,
) -> Spans:
    """The first `want` ids of a phrase's matches in the page's order, read a span of time at a
    time (the last four weeks, then a span grown by what it lacked, … then everything).

    A phrase's positions are checked on each row, and the GIN index knows only that a row has
    both words. Read in time order, a phrase of two common words rarely found walked the time
    index through most of the archive (454,584 rows, 1.1 s at 1,000,000 messages); read from the
    GIN index, a phrase of two very common words checked every row holding both. Within a span,
    the rows with both words are read from the GIN index unordered and sorted here; the span
    grows until it holds `want` matches, so a common phrase is found among recent rows and a
    rare one costs what its words cost. Spans eight times the last (as they all were) read 56
    days where 14 held the page (the week had found 25 of 26), and each read the ones before
    it again (docs/SCALE.md §7k). The ids are those the plain ordered statement gives.

    Every span's statement runs with SEARCH_WORK_MEM, pairs or words: a span ANDs its words'
    bitmap with the bitmap of its channel and time (message_channel_sent), which past a few
    hundred thousand rows overflowed the default 4 MB and turned lossy, every row of half its
    pages checked again ("goujitu it" at 10M, its second span: 587,367 rows of channel and time,
    2,326 lossy pages, 92 -> 76 ms; the slowest phrases 5-20 ms faster, docs/SCALE.md §7l).

    `every` (phrase_ids, for a phrase without pairs): every match in one statement, read instead
    of the spans when its index gives few rows, or instead of the spans after the first when
    checking those rows costs less than the spans' bitmaps would (Every; docs/SCALE.md §7s)."""
    at_once = every.matches if every is not None and every.first() else None
    edge: dict[str, Any] = {}  # read at once: no spans to size by the archive's edges
    if at_once is None:
        edge = Message.objects.aggregate(first=Min("sent_at"), last=Max("sent_at"))
        if beyond is not None and edge["last"] is not None:  # spans from there on (phrase_ids)
            edge["first" if oldest else "last"] = beyond
    with _local_settings(work_mem=SEARCH_WORK_MEM):  # the statements reading `messages`
        if at_once is not None:
            found, whole = list(at_once.values_list("id", "sent_at")), True
        else:
            found, whole = _spans(messages, edge, oldest, want, pairs_rows, every)
        ids = _in_order(messages, found, oldest, want, whole)
    return Spans(ids, len(found), whole)


def _spans(
    messages: QuerySet[Message],
    edge: dict[str, Any],
    oldest: bool,
    want: int,
    pairs_rows: float | None,
    every: "Every | None" = None,
) -> tuple[list[tuple[int, Any]], bool]:
    """The (id, sent_at) of the matches in the spans read until they hold `want` or the whole
    archive, and whether they did reach the whole archive (_phrase_matches); having reached it,
    the undated matches too (sent_at None). `every`: the same matches, every one of them in one
    statement, read instead of every span after the first when that is cheaper (Every.rest)."""
    if edge["last"] is None:  # no message has a time: the whole archive is one span
        return list(messages.values_list("id", "sent_at")), True
    archive = edge["last"] - edge["first"]
    span, unread = PHRASE_FIRST_SPAN, Q()  # unread: the time no span before has covered
    if pairs_rows:  # the share of the archive's time that should hold `want` of them
        span = max(min(span, archive * PAIRS_SPAN_MARGIN * want / pairs_rows), PAIRS_SHORTEST_SPAN)
    found: list[tuple[int, Any]] = []
    while True:
        whole = archive <= span
        if oldest:
            bound = edge["first"] + span
            window, outside = Q(sent_at__lte=bound), Q(sent_at__gt=bound)
        else:
            bound = edge["last"] - span
            window, outside = Q(sent_at__gte=bound), Q(sent_at__lt=bound)
        if whole:  # the rest of the archive, its undated messages too: `found` is every match
            window = (unread | Q(sent_at__isnull=True)) if unread else Q()
        else:
            window &= unread
        found += messages.filter(window).values_list("id", "sent_at")
        if len(found) >= want or whole:
            return found, whole
        if every is not None and not unread and every.rest(span, archive - span, len(found), want):
            return list(every.matches.values_list("id", "sent_at")), True  # the first span again
        lacking = 1.5 * want / len(found) if found else PHRASE_GROWTH[1]
        span *= min(max(lacking, PHRASE_GROWTH[0]), PHRASE_GROWTH[1])
        unread = outside


def _in_order(
    messages: QuerySet[Message],
    found: list[tuple[int, Any]],
    oldest: bool,
    want: int,
    whole: bool,
) -> list[int]:
    """The first `want` ids in the page's order: the spans' matches sorted, and the undated
    messages first (oldest first, as transcript.ASC) or last (newest first); read here unless
    the spans reached the `whole` archive, which found them."""
    dated = sorted(
        ((pk, at) for pk, at in found if at is not None),
        key=lambda row: (row[1], row[0]),
        reverse=not oldest,
    )
    ids = [pk for pk, _ in dated]
    if whole:
        undated = sorted((pk for pk, at in found if at is None), reverse=not oldest)
        return [*undated, *ids][:want] if oldest else [*ids, *undated][:want]
    if oldest:
        first = messages.filter(sent_at__isnull=True).order_by(*ASC)
        return [*first.values_list("id", flat=True)[:want], *ids][:want]
    if len(ids) < want:
        last = messages.filter(sent_at__isnull=True).order_by(*DESC)
        ids += last.values_list("id", flat=True)[: want - len(ids)]
    return ids[:want]


def pairs_memory(pairs: bool) -> contextlib.AbstractContextManager[None]:
    """For a statement that reads its rows from the word pairs' index (`pairs`), SEARCH_WORK_MEM
    while it runs (_page says why); else nothing."""
    return _local_settings(work_mem=SEARCH_WORK_MEM) if pairs else contextlib.nullcontext()


@contextlib.contextmanager
def _local_settings(**values: str) -> Iterator[None]:
    """A transaction (a savepoint inside a caller's) in which each setting named is its value:
    undone with it if it fails; inside a caller's transaction put back as they were afterwards,
    since a released savepoint keeps what SET LOCAL did. The names are ours, never input."""
    nested = connection.in_atomic_block
    names = list(values)
    read = ", ".join(f"current_setting('{name}'), set_config('{name}', %s, true)" for name in names)
    put_back = ", ".join(f"set_config('{name}', %s, true)" for name in names)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT {read}", [values[name] for name in names])
        previous = cursor.fetchone()[::2]
        yield
        if nested:
            cursor.execute(f"SELECT {put_back}", list(previous))


def _capped_count(messages: QuerySet[Message], budget_ms: str, *, pairs: bool) -> int | None:
    """The matches up to COUNT_CAP + 1, within `budget_ms` of database time (with
    SEARCH_WORK_MEM for `pairs`, as the page); None when the budget ran out.

    Counting is unordered, so PostgreSQL collects matches from the GIN index or the first rows
    of the table, whichever it expects to be cheaper (walking message_sent in order to the
    1,001st match read the whole table for a phrase with fewer matches: 1.2 s at 1,000,000
    messages)."""
    counted = messages.order_by().values("id")[: COUNT_CAP + 1]
    settings = {"statement_timeout": budget_ms}
    if pairs:
        settings["work_mem"] = SEARCH_WORK_MEM
    try:
        with _local_settings(**settings):
            return counted.count()
    except OperationalError:  # QueryCanceled: the budget ran out
        return None


def ranked(
    messages: QuerySet[Message], query: SearchQuery, start: int, stop: int
) -> tuple[list[int], int]:
    """Ids [start:stop) of the best matches among the newest RELEVANCE_WITHIN, and how many
    matches that window holds. Ranking every match of a common word reads all of them (157 ms
    and more at 1,000,000 messages), while a reviewer looking for the best match wants it among
    recent messages; the form says so. Each row of the window is ranked as it is read (a
    rank joined back to the window read each message twice), and the window's size comes with
    the page."""
    recent = (
        messages.order_by(*DESC)
        .annotate(rank=SearchRank(F("search"), query))
        .values("id", "sent_at", "rank")[:RELEVANCE_WITHIN]
    )
    sql, params = recent.query.sql_with_params()
    with connection.cursor() as cursor:
        # the ORM's own statement, wrapped: nothing from a request is SQL here
        cursor.execute(
            f"SELECT id, count(*) OVER () FROM ({sql}) recent"  # noqa: S608
            " ORDER BY rank DESC, sent_at DESC NULLS LAST, id DESC LIMIT %s OFFSET %s",
            [*params, stop - start, start],
        )
        rows = cursor.fetchall()
    return [row[0] for row in rows], rows[0][1] if rows else 0


def latest_name(participant: str) -> Subquery:
    """The latest name of the participant at `participant` (a path to its id from the rows
    annotated), as messaging.participants.latest_names gives it: the last profile by time and
    id, its name, else its username. Read with a page's rows, one probe each, rather than in a
    statement of its own."""
    profiles = ParticipantProfile.objects.filter(participant_id=OuterRef(participant)).order_by(
        "-seen_at", "-id"
    )
    shown = Coalesce(NullIf("name", Value("")), "username", output_field=TextField())
    return Subquery(profiles.annotate(shown=shown).values("shown")[:1])


# One probe per hit for its conversation, participant and channel and its latest name, in the
# page's order: joined the ORM's way, the planner hashed the whole conversation and participant
# tables for 25 rows (0.45 of 0.67 ms at 2,000 conversations, and growing with them); LATERAL
# with OFFSET 0 keeps each a lookup by primary key. The latest name is
# messaging.participants.latest_names' (the last profile by time and id, its name, else its
# username), and `repeated` says a phone export repeats the message (provenance.linked).
_HITS = """
SELECT m.id, m.seq, m.channel_id, m.wamid, m.conversation_id, m.direction, m.source, m.type,
       m.sent_at, m.text, CASE WHEN m.source = %s THEN m.payload -> 'import' END,
       c.key, c.participant_id, c.group_id, c.wa_id, ch.name,
       (SELECT COALESCE(NULLIF(pp.name, ''), pp.username) FROM messaging_participantprofile pp
         WHERE pp.participant_id = c.participant_id ORDER BY pp.seen_at DESC, pp.id DESC LIMIT 1),
       EXISTS (SELECT FROM messaging_importedmessage im
               WHERE im.message_id = m.id AND NOT im.created),
       {headline}
FROM unnest(%s::bigint[]) AS page (id)
JOIN messaging_message m ON m.id = page.id
CROSS JOIN LATERAL (
  SELECT c.key, c.participant_id, c.group_id, coalesce(p.wa_id, '') AS wa_id
  FROM messaging_conversation c LEFT JOIN messaging_participant p ON p.id = c.participant_id
  WHERE c.id = m.conversation_id OFFSET 0) c
CROSS JOIN LATERAL (SELECT ch.name FROM messaging_channel ch WHERE ch.id = m.channel_id OFFSET 0) ch
"""


# ts_headline's options, as SearchHeadline writes them (connection.ops.compose_sql): the snippet
# is the search page's since issue 5, two fragments of 15-35 words between our markers.
_HEADLINE_OPTIONS = (
    f"StartSel='{_START}', StopSel='{_STOP}', MaxWords=35, MinWords=15, MaxFragments=2,"
    " FragmentDelimiter=' … '"
)


def _headline(query: SearchQuery | None) -> tuple[str, list[Any]]:
    """The headline column of `hits`' statement: the query's own SQL, compiled as the ORM would
    write it in a filter, so the snippet marks what the search matched."""
    if query is None:
        return "NULL", []
    compiler = Message.objects.none().query.get_compiler(connection=connection)
    sql, params = compiler.compile(query.resolve_expression(compiler.query))
    return f"ts_headline('simple', m.text, {sql}, %s)", [*params, _HEADLINE_OPTIONS]


def hits(ids: list[int], query: SearchQuery | None) -> list[Hit]:
    """The hits for a page of message ids (in that order), with their highlighted snippets,
    clients' names and phone-export provenance: one statement, and a second only for a page
    with messages that phone exports repeat; none for no ids. A message gone since its id was
    read (disposed of in between) is left out."""
    if not ids:
        return []
    headline, headline_params = _headline(query)
    with connection.cursor() as cursor:
        # our own statement: the request gives only parameters. Planned once a database session
        # for each form of headline (archive.prepared): its plan (a lookup by key per id) is the
        # same whatever the ids and words, and planning it was 0.4-0.5 ms of every search page
        prepared.execute(
            cursor,
            _HITS.format(headline=headline),
            [PHONE_EXPORT, *headline_params, list(ids)],
        )
        rows = cursor.fetchall()
    by_id: dict[int, tuple[Shown, str, bool, str | None]] = {}
    for row in rows:
        shown = Shown(
            pk=row[0],
            entry_id=row[1],
            channel_id=row[2],
            wamid=row[3],
            conversation_id=row[4],
            direction=row[5],
            source=row[6],
            type=row[7],
            sent_at=row[8],
            text=row[9],
            payload={} if row[10] is None else {"import": json.loads(row[10])},
            conversation_key=row[11],
            participant_id=row[12],
            group_id=row[13],
            wa_id=row[14],
            channel_name=row[15],
        )
        by_id[shown.pk] = (shown, row[16] or "", row[17], row[18])
    also: dict[int, list[Imported]] = {}
    repeated = [pk for pk, (_, _, again, _) in by_id.items() if again]
    if repeated:
        links = ImportedMessage.objects.filter(message_id__in=repeated, created=False)
        for entry in links.select_related("export").order_by("export_id", "first_line"):
            also.setdefault(entry.message_id, []).append(linked(entry))
    found = []
    for pk in ids:
        if pk not in by_id:
            continue
        message, name, _, raw = by_id[pk]
        hit = Hit(
            message, highlight(raw or message.text[:240]), name, imported(message), also.get(pk, [])
        )
        if hit.imported is not None and not name and message.direction == "in":
            hit.name = author_name(hit.imported)
        if message.participant_id is None and not message.group_id:
            hit.chat = chat_name_in(message.conversation_key)
        found.append(hit)
    return found


def highlight(headline: str) -> SafeString:
    """Escape what the client wrote, then turn the headline markers into <mark>."""
    text = escape(headline).replace(_START, "<mark>").replace(_STOP, "</mark>")
    # A marker the client typed themselves (or one cut off by a fragment) is closed or removed.
    if text.count("<mark>") != text.count("</mark>"):
        text = text.replace("<mark>", "").replace("</mark>", "")
    return mark_safe(text)  # noqa: S308 - escaped above; only our own <mark> tags remain
