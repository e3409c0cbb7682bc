"""Search semantics on real PostgreSQL: web-search syntax, filters, names and partial numbers."""

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from django.contrib.postgres.search import SearchHeadline
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from archive import prepared
from messaging.models import Conversation, Message
from messaging.participants import latest_names
from retention import holds
from retention.holds import HoldScope
from review import access, search, transcript
from review.models import AccessEvent, ConversationTag, Flag, MessageTag, Tag
from tests.review.conftest import NOW, inbound, planner_rows_as_at_10m, seal, work_mem_seen


def wamids(world: Any, **data: Any) -> set[str]:
    results = search.search(Message.objects.all(), data)
    return {hit.message.wamid for hit in results.hits}


@pytest.fixture
def words(world: Any) -> Any:
    t = str(NOW + 200)
    seal(
        inbound(
            "4915112345678",
            "Jonas Weber",
            {
                "id": "w.1",
                "timestamp": t,
                "type": "text",
                "text": {"body": "the bond fund is safe"},
            },
        ),
        inbound(
            "4915112345678",
            "Jonas Weber",
            {
                "id": "w.2",
                "timestamp": t,
                "type": "text",
                "text": {"body": "fund the bond account"},
            },
        ),
        inbound(
            "4915112345678",
            "Jonas Weber",
            {"id": "w.3", "timestamp": t, "type": "text", "text": {"body": "crypto is risky"}},
        ),
    )
    return world


def test_it_finds_every_word_given(words: Any) -> None:
    assert {"w.1", "w.2"} <= wamids(words, q="bond fund")
    assert "w.3" not in wamids(words, q="bond fund")


def test_it_finds_quoted_phrases_in_order(words: Any) -> None:
    found = wamids(words, q='"bond fund"')
    assert "w.1" in found and "w.2" not in found


def test_it_finds_either_word_with_or(words: Any) -> None:
    assert {"w.1", "w.3"} <= wamids(words, q="safe OR crypto")
    assert "w.2" not in wamids(words, q="safe OR crypto")


def test_it_excludes_words_with_a_minus(words: Any) -> None:
    found = wamids(words, q="bond -safe")
    assert "w.2" in found and "w.1" not in found


def test_it_searches_file_names_and_captions(world: Any) -> None:
    assert "wamid.xss-doc" in wamids(world, q="pdf")
    assert "wamid.image" in wamids(world, q="passport")


def test_it_finds_conversations_by_partial_number_and_name(words: Any) -> None:
    by_number = search.people("1511234")
    assert [c.wa_id for c in by_number] == ["4915112345678"]
    assert [c.wa_id for c in search.people("+49 151 123")] == ["4915112345678"]
    assert [c.wa_id for c in search.people("jonas")] == ["4915112345678"]
    assert search.people("nobody-called-this") == []
    # a name is looked up by a word of three letters or more (trigrams); "jo" alone names nobody
    assert search.people("jo") == [] and [c.wa_id for c in search.people("jo weber")] == [
        "4915112345678"
    ]


@pytest.mark.parametrize(
    "q",
    [
        "jonas",
        "WEBER jonas",
        "1511234",
        "+49 151 123",
        "jonas 4915",
        "%_%",
        "_%_",
        "jo%s",
        "-jonas",
    ],
)
def test_people_finds_the_conversations_the_participant_filter_finds(words: Any, q: str) -> None:
    """`people` writes its statement by hand (search._PEOPLE); it names the conversations
    participant_conversations finds for the same words or number, LIKE's own characters
    matched as themselves."""
    seal(
        inbound(
            "4915112345678",
            "Jo%_% Weber_%_x",
            {"id": "w.6", "timestamp": str(NOW + 300), "type": "text", "text": {"body": "hi"}},
        )
    )
    found = {c.pk for c in search.people(q)}
    plain = " ".join(w for w in q.split() if not w.startswith("-") and not re.search(r"\d", w))
    digits = re.findall(r"\d{3,}", q) if not re.match(r"^\+?[\d\s().-]{3,}$", q) else [q]
    expected: set[int] = set()
    for text in [plain, *digits]:
        if text:
            expected |= set(search.participant_conversations(text).values_list("pk", flat=True))
    assert found == expected
    # LIKE's characters as themselves: one client's name holds "%_%" and "_%_", the others' do
    # not (unescaped, both would name everyone, "jo%s" Jonas)
    named = Conversation.objects.filter(participant__isnull=False).count()
    if q in ("%_%", "_%_"):
        assert found and len(found) < named
    if q in ("jo%s", "-jonas"):
        assert not found


def test_a_name_matches_when_one_name_the_client_showed_holds_every_word(words: Any) -> None:
    seal(
        inbound(
            "4915112345678",
            "J. Schmidt",
            {"id": "w.4", "timestamp": str(NOW + 300), "type": "text", "text": {"body": "hi"}},
        )
    )
    assert [c.wa_id for c in search.people("schmidt")] == ["4915112345678"]
    assert [c.wa_id for c in search.people("jonas weber")] == ["4915112345678"]
    assert search.people("jonas schmidt") == []  # two names, each holding one of the words
    assert wamids(words, participant="jonas schmidt") == set()


def test_a_page_reads_only_what_it_shows(words: Any) -> None:
    """The hits' and the people's statements leave out the channel's access token and the
    search vector; a page without hits sends no statement for them."""
    seal(
        inbound(
            "4915112345678",
            "Jonas Weber",
            {"id": "w.5", "timestamp": str(NOW + 300), "type": "text", "text": {"body": "weber"}},
        )
    )
    with CaptureQueriesContext(connection) as queries:
        results = search.search(Message.objects.all(), {"q": "weber"})
    assert results.hits and results.people
    sent = [prepared.statement(q["sql"]) for q in queries.captured_queries]
    selected = [sql for sql in sent if "messaging_channel" in sql]
    assert len(selected) == 2  # the hits and the people
    for sql in selected:
        assert "access_token" not in sql and not re.search(r'\."?search"?\b', sql)
    with CaptureQueriesContext(connection) as queries:
        assert search.hits([], None) == []
    assert not queries.captured_queries


def test_the_search_page_sends_as_many_statements_for_many_hits_as_for_one(
    client: Any, reviewer: Any, words: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a hit shows is read with the page (search._HITS): rendering a hit reads no
    column left out of it, one statement a hit."""
    client.force_login(reviewer)
    client.get(reverse("review:search"))
    counts = []
    for size in (1, 3):
        monkeypatch.setattr(search, "PAGE_SIZE", size)
        with CaptureQueriesContext(connection) as captured:
            page = client.get(reverse("review:search"), {"q": "bond OR fund OR crypto"})
        assert len(page.context["results"].hits) == size
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


def test_it_filters_by_participant_direction_and_type(words: Any) -> None:
    assert wamids(words, q="bond", participant="5112345") == {"w.1", "w.2"}
    outbound = wamids(words, direction="out")
    assert outbound and all(Message.objects.get(wamid=w).direction == "out" for w in outbound)
    assert wamids(words, type="document") == {"wamid.xss-doc"}
    assert wamids(words, attachment=True) == {"wamid.xss-doc", "wamid.image"}


def test_it_filters_by_date_range(words: Any) -> None:
    day = Message.objects.get(wamid="w.1").sent_at.date()
    assert "w.1" in wamids(words, q="bond", date_from=day, date_to=day)
    assert wamids(words, q="bond", date_from=date(2020, 1, 1), date_to=date(2020, 1, 2)) == set()


def test_it_filters_by_tag_and_flag_state(words: Any, reviewer: Any) -> None:
    tag = Tag.objects.get()
    w1, w2 = Message.objects.get(wamid="w.1"), Message.objects.get(wamid="w.2")
    MessageTag.objects.create(message=w1, tag=tag, added_by=reviewer)
    assert wamids(words, tag=tag) == {"w.1"}
    ConversationTag.objects.create(conversation=w2.conversation, tag=tag, added_by=reviewer)
    assert wamids(words, tag=tag, q="bond") == {"w.1", "w.2"}
    Flag.objects.create(conversation=w2.conversation, message=w2, source="manual")
    assert wamids(words, flag="open") == {"w.2"}
    assert wamids(words, flag="decided") == set()
    assert "w.2" not in wamids(words, flag="none", q="bond")


def test_it_highlights_hits_and_escapes_everything_else(world: Any) -> None:
    results = search.search(Message.objects.all(), {"q": "see"})
    (hit,) = results.hits
    assert "<mark>see</mark>" in hit.snippet
    assert "<img" not in hit.snippet and "alert(2)&gt;" in hit.snippet


def test_a_hit_shows_its_message_as_the_archive_holds_it(words: Any) -> None:
    """search.hits reads its rows by hand (search._HITS): every field shown is the Message's,
    its conversation's, participant's and channel's, and the client's latest name."""
    ids = list(Message.objects.order_by("-id").values_list("id", flat=True))
    shown = search.hits(ids, None)
    assert [hit.message.pk for hit in shown] == ids
    names = latest_names({m.conversation.participant_id for m in Message.objects.all()} - {None})
    for hit in shown:
        m = Message.objects.select_related("conversation__participant", "channel").get(
            pk=hit.message.pk
        )
        convo = m.conversation
        assert (
            hit.message.entry_id,
            hit.message.channel_id,
            hit.message.wamid,
            hit.message.conversation_id,
            hit.message.direction,
            hit.message.source,
            hit.message.type,
            hit.message.sent_at,
            hit.message.text,
            hit.message.conversation_key,
            hit.message.participant_id,
            hit.message.group_id,
            hit.message.wa_id,
            hit.message.channel_name,
        ) == (
            m.entry_id,
            m.channel_id,
            m.wamid,
            m.conversation_id,
            m.direction,
            m.source,
            m.type,
            m.sent_at,
            m.text,
            convo.key,
            convo.participant_id,
            convo.group_id,
            convo.participant.wa_id if convo.participant else "",
            m.channel.name,
        )
        assert hit.name == names.get(convo.participant_id, "")
        assert hit.snippet == search.highlight(m.text[:240])


@pytest.mark.parametrize(
    "q", ["bond", "the bond", '"bond fund"', "fund OR crypto", "bond -safe", "see", "alert"]
)
def test_a_hits_snippet_is_the_headline_the_orm_would_write(words: Any, q: str) -> None:
    """The snippet's ts_headline is written by hand (search._headline); Django's SearchHeadline
    with the page's options gives the same text for every hit, a long message's fragments too."""
    filler = " ".join(f"word{i}" for i in range(60))
    long = f"{filler} the bond fund {filler} crypto or see {filler} alert bond {filler}"
    when = str(NOW + 300)
    seal(
        inbound(
            "4915112345678",
            "Jonas Weber",
            {"id": "w.long", "timestamp": when, "type": "text", "text": {"body": long}},
        )
    )
    query = search.text_query(q)
    ids = list(Message.objects.filter(search=query).order_by("id").values_list("id", flat=True))
    assert ids
    orm = Message.objects.filter(id__in=ids).annotate(
        headline=SearchHeadline(
            "text",
            query,
            config="simple",
            start_sel=search._START,
            stop_sel=search._STOP,
            max_words=35,
            min_words=15,
            max_fragments=2,
            fragment_delimiter=" … ",
        )
    )
    expected = {m.pk: search.highlight(m.headline or m.text[:240]) for m in orm}
    assert {hit.message.pk: hit.snippet for hit in search.hits(ids, query)} == expected


def test_a_hit_gone_since_its_id_was_read_is_left_out(words: Any) -> None:
    """Disposition may remove a message between a page's ids and its hits: the page shows the
    others rather than failing."""
    kept = Message.objects.get(wamid="w.1").pk
    gone = Message.objects.order_by("-id").values_list("id", flat=True)[0] + 1_000
    assert [hit.message.pk for hit in search.hits([gone, kept], None)] == [kept]


@given(st.text(max_size=200))
def test_it_never_lets_a_headline_carry_markup(text: str) -> None:
    html = search.highlight(text)
    assert "<" not in html.replace("<mark>", "").replace("</mark>", "")
    assert html.count("<mark>") == html.count("</mark>")


def test_it_counts_and_pages(words: Any) -> None:
    results = search.search(Message.objects.all(), {"q": "bond", "participant": "Jonas"})
    assert results.total == 2 and not results.capped and not results.has_next
    everything = search.search(Message.objects.all(), {})
    assert everything.total == Message.objects.exclude(type__in=["reaction", "revoke"]).count()
    assert everything.has_next == (everything.total > search.PAGE_SIZE)


def test_it_counts_across_pages_and_caps_the_count(
    words: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    visible = Message.objects.exclude(type__in=["reaction", "revoke"]).count()
    monkeypatch.setattr(search, "PAGE_SIZE", 2)
    second = search.search(Message.objects.all(), {"page": 2})
    assert (second.total, second.capped, second.counting) == (4, True, True)
    assert len(second.hits) == 2 and search.count(Message.objects.all(), {}) == visible > 4
    last = search.search(Message.objects.all(), {"page": (visible + 1) // 2})
    assert (last.total, last.capped, last.counting) == (visible, False, False)
    monkeypatch.setattr(search, "COUNT_CAP", 3)
    capped = search.search(Message.objects.all(), {"page": (visible + 1) // 2})
    assert (capped.total, capped.capped) == (3, True)
    assert search.count(Message.objects.all(), {}) == 4  # COUNT_CAP + 1: "more than 3"


def test_a_last_page_knows_its_total_and_any_other_asks_for_it_afterwards(
    words: Any, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    """A page holding every match counts nothing: the participants, its ids, the hits. One with
    more after it counts nothing either: it says "more than" what it has seen, and the count is
    asked for in a request of its own (`count`), so that no page's hits wait for a count.
    Relevance counts its ranked window in the page's statement."""
    monkeypatch.setattr(search, "PAGE_SIZE", 50)
    with django_assert_num_queries(3):
        results = search.search(Message.objects.all(), {"q": "bond"})
    matching = len(results.hits)
    assert (results.total, results.capped, results.has_next) == (matching, False, False)
    assert matching > 1 and not results.counting
    monkeypatch.setattr(search, "PAGE_SIZE", 1)
    with django_assert_num_queries(3):
        results = search.search(Message.objects.all(), {"q": "bond"})
    assert (results.total, results.capped, results.has_next) == (1, True, True)
    assert results.counting
    with django_assert_num_queries(5) as captured:  # a savepoint, the setting, the count, back
        assert search.count(Message.objects.all(), {"q": "bond"}) == matching
    settings = [q["sql"] for q in captured.captured_queries if "set_config" in q["sql"]]
    assert len(settings) == 2 and "statement_timeout" in settings[0]
    with django_assert_num_queries(3):
        ranked = search.search(Message.objects.all(), {"q": "bond", "sort": "relevance"})
    assert (ranked.total, ranked.capped, ranked.has_next) == (matching, False, True)


@pytest.mark.parametrize("whole_below", [-1, 10**9])
@pytest.mark.parametrize("sort", ["newest", "oldest"])
@pytest.mark.parametrize("q", ['"bond fund"', '"the bond"', '"see"', "a-b"])
def test_it_finds_a_phrase_span_by_span_in_the_plain_order(
    words: Any, monkeypatch: pytest.MonkeyPatch, q: str, sort: str, whole_below: int
) -> None:
    """Read a span of time at a time, or in one statement (its words in at most
    PHRASE_WHOLE_BELOW rows), a phrase's hits are those of the plain ordered statement."""
    monkeypatch.setattr(search, "PAGE_SIZE", 2)
    monkeypatch.setattr(search, "PHRASE_FIRST_SPAN", timedelta(seconds=1))
    monkeypatch.setattr(search, "PHRASE_WHOLE_BELOW", whole_below)
    plain = Message.objects.filter(search=search.text_query(q))
    order = transcript.ASC if sort == "oldest" else transcript.DESC
    visible = plain.exclude(type__in=["reaction", "revoke"]).order_by(*order)
    expected = list(visible.values_list("id", flat=True))
    for page in (1, 2):
        data = {"q": q, "sort": sort, "page": page}
        results = search.search(Message.objects.all(), data)
        assert [h.message.pk for h in results.hits] == expected[(page - 1) * 2 : page * 2]
        if results.counting:  # a span short of the archive held the page: counted afterwards
            assert results.capped and results.total == min(page * 2, len(expected))
            assert search.count(Message.objects.all(), data) == len(expected)
        else:
            assert results.total == len(expected)


@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_a_phrase_whose_spans_reach_the_whole_archive_is_counted_by_them(
    words: Any, monkeypatch: pytest.MonkeyPatch, sort: str
) -> None:
    """Spans that read the whole archive have seen every match, the undated ones too (first
    oldest first, last newest first): the page says how many without a COUNT of its own."""
    undated = {"type": "text", "text": {"body": "an undated bond fund"}}  # no timestamp
    seal(*[inbound("4915112345678", "Jonas Weber", {"id": f"u.{n}", **undated}) for n in range(3)])
    monkeypatch.setattr(search, "PAGE_SIZE", 2)
    monkeypatch.setattr(search, "PHRASE_FIRST_SPAN", timedelta(seconds=1))
    q = '"bond fund"'
    order = transcript.ASC if sort == "oldest" else transcript.DESC
    plain = Message.objects.filter(search=search.text_query(q)).order_by(*order)
    expected = list(plain.values_list("id", flat=True))
    assert len(expected) > 4 and plain.filter(sent_at__isnull=True).count() == 3
    for page in range(1, (len(expected) + 1) // 2 + 1):
        with CaptureQueriesContext(connection) as captured:
            results = search.search(Message.objects.all(), {"q": q, "sort": sort, "page": page})
        assert [h.message.pk for h in results.hits] == expected[(page - 1) * 2 : page * 2]
        assert (results.total, results.capped, results.counting) == (len(expected), False, False)
        assert not [c for c in captured.captured_queries if "COUNT(*)" in c["sql"]]


def pages_of_twelve(
    q: str, sort: str, **filters: Any
) -> Iterator[tuple[dict[str, Any], Any, list[str]]]:
    """The four pages of three of a query with twelve matches, each with the statements it ran,
    its hits checked against the plain ordered statement's (what every way of reading it must
    give). `filters`: more of the search's data (its channel), which must not change them."""
    order = transcript.ASC if sort == "oldest" else transcript.DESC
    plain = Message.objects.filter(search=search.text_query(q)).order_by(*order)
    expected = list(plain.values_list("id", flat=True))
    assert len(expected) == 12
    for page in range(1, 5):
        data = {"q": q, "sort": sort, "page": page, **filters}
        with CaptureQueriesContext(connection) as captured:
            results = search.search(Message.objects.all(), data)
        assert [h.message.pk for h in results.hits] == expected[(page - 1) * 3 : page * 3]
        yield data, results, [c["sql"] for c in captured.captured_queries]


@pytest.fixture
def portfolios(world: Any) -> Any:
    """A phrase of a long and a short word (no word pairs) an hour apart in 12 messages, and
    its words the other way round in 12 more."""
    seal(
        *[
            inbound(
                "4915112345678",
                "Jonas Weber",
                {
                    "id": f"f.{n}",
                    "timestamp": str(NOW + 300 + 1800 * n),
                    "type": "text",
                    "text": {"body": "send the portfolio" if n % 2 else "portfolio the send"},
                },
            )
            for n in range(24)
        ]
    )
    return world


def test_a_phrases_spans_run_with_the_search_work_mem(
    portfolios: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span ANDs its words' bitmap with its channel and time's: without pairs too, its
    statements have search.SEARCH_WORK_MEM (the default 4 MB turned a span's bitmap lossy at
    10M), and no other statement of the page has it."""
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    monkeypatch.setattr(search, "PHRASE_FIRST_SPAN", timedelta(hours=1))
    monkeypatch.setattr(search, "PHRASE_WHOLE_BELOW", -1)  # span by span, however rare
    q = '"the portfolio"'
    assert search.phrase_pairs(q) is None
    with work_mem_seen(lambda sql: '"messaging_message"."sent_at" AS "sent_at"' in sql) as seen:
        results = search.search(Message.objects.all(), {"q": q})
    assert results.hits
    spans = [memory for span, memory in seen if span]
    assert len(spans) > 1 and set(spans) == {search.SEARCH_WORK_MEM}
    assert search.SEARCH_WORK_MEM not in [memory for span, memory in seen if not span]


@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_a_phrase_without_pairs_is_read_through_its_long_words(
    portfolios: Any, monkeypatch: pytest.MonkeyPatch, sort: str
) -> None:
    """Its statements ask the words' index for the long word alone (a short word's posting list
    is most of the archive's) and check the phrase on the rows it gives; the spans grow by what
    they lacked; a page a span short of the archive held is counted afterwards, not in its own
    request: it gives the plain ordered statement's hits and, asked, its total."""
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    monkeypatch.setattr(search, "PHRASE_WALK", 1)
    monkeypatch.setattr(search, "PHRASE_FIRST_SPAN", timedelta(hours=1))
    monkeypatch.setattr(search, "PHRASE_WHOLE_BELOW", -1)  # span by span, however rare
    monkeypatch.setattr(search, "PHRASE_CHECK_OVER_BITMAP", 10**9)  # and after the first
    monkeypatch.setattr(search, "PHRASE_RARE_SHORT", -1)  # "the" as frequent as it is at 10M
    monkeypatch.setattr(search, "PHRASE_SHORT_OVER_LONG", 0)
    q = '"the portfolio"'
    assert search.phrase_pairs(q) is None
    messages, _ = search.matching(Message.objects.all(), {"q": q})
    assert "'portfolio'::tsquery" in str(messages.query)
    assert "'the'" not in str(messages.query).replace("'the' <-> 'portfolio'", "")
    counting = []
    for data, results, statements in pages_of_twelve(q, sort):
        counted = [sql for sql in statements if "COUNT(*)" in sql]
        if results.counting:  # found a span short of the archive: not counted in this request
            assert counted == [] and (results.total, results.capped) == (data["page"] * 3, True)
            assert search.count(Message.objects.all(), data) == 12
        else:  # the spans reached the whole archive: every match seen
            assert results.total == 12 and not results.capped
        counting.append(results.counting)
    assert counting[0] and not counting[-1]  # the first page from a span, the last from all


@pytest.mark.parametrize(
    ("rare_short", "short_over_long", "kept"),
    [(10**9, 0, True), (-1, 10**9, True), (-1, 0, False)],
)
def test_a_short_word_is_read_from_the_index_with_the_long_ones_unless_far_more_common(
    portfolios: Any,
    monkeypatch: pytest.MonkeyPatch,
    rare_short: int,
    short_over_long: int,
    kept: bool,
) -> None:
    """A short word the planner expects in at most PHRASE_RARE_SHORT rows (a name, a number),
    or in at most PHRASE_SHORT_OVER_LONG times the rows of the rarest long word, is not left
    out of the index's condition; a far more common one is. The hits are the same either way."""
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    monkeypatch.setattr(search, "PHRASE_RARE_SHORT", rare_short)
    monkeypatch.setattr(search, "PHRASE_SHORT_OVER_LONG", short_over_long)
    q = '"the portfolio"'
    messages, _ = search.matching(Message.objects.all(), {"q": q})
    assert ("'portfolio'::tsquery" not in str(messages.query)) == kept  # else the long word alone
    with CaptureQueriesContext(connection) as captured:
        search.search(Message.objects.all(), {"q": q})
    estimates = [c["sql"] for c in captured.captured_queries if c["sql"].startswith("EXPLAIN")]
    # each word's rows once; the long word's alone is what its index gives, the query with
    # every word kept is asked for its own
    assert len(estimates) == (3 if kept else 2)
    for _, results, _ in pages_of_twelve(q, "newest"):
        assert results.hits


@pytest.mark.parametrize("channel", [False, True])
@pytest.mark.parametrize("cheaper", [False, True])
@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_after_a_first_span_that_falls_short_the_rest_may_be_read_at_once(
    portfolios: Any, monkeypatch: pytest.MonkeyPatch, sort: str, cheaper: bool, channel: bool
) -> None:
    """When checking every row its index gives costs less than the bitmaps of time the spans
    are expected to build (search.Every.rest), a first span short of the page is followed by one
    statement reading every match, its channel read from the words' index (the bigint): the page
    knows its total. Otherwise the spans go on. The hits are the plain ordered statement's
    either way."""
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    monkeypatch.setattr(search, "PHRASE_FIRST_SPAN", timedelta(hours=1))
    monkeypatch.setattr(search, "PHRASE_WHOLE_BELOW", -1)
    monkeypatch.setattr(search, "PHRASE_CHECK_OVER_BITMAP", 0 if cheaper else 10**9)
    filters = {"channel": portfolios.channel} if channel else {}
    for data, results, statements in pages_of_twelve('"the portfolio"', sort, **filters):
        spans = [sql for sql in statements if '"sent_at" AS "sent_at"' in sql]
        timed = ['"messaging_message"."sent_at" ' in sql.split("WHERE", 1)[1] for sql in spans]
        if data["page"] == 1 and cheaper:  # an hour's span (two of the 12), then all at once
            assert timed == [True, False]
            assert ["::bigint" in sql for sql in spans] == [False, channel]
            assert (results.total, results.counting) == (12, False)
        elif data["page"] == 1:
            assert len(spans) > 1 and all(timed)


@pytest.mark.parametrize("channel", [False, True])
@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_a_phrase_whose_words_are_rare_is_read_in_one_statement(
    portfolios: Any, monkeypatch: pytest.MonkeyPatch, sort: str, channel: bool
) -> None:
    """Its words in at most PHRASE_WHOLE_BELOW rows (in its channel, when it has one), a phrase
    without pairs is one statement over the whole archive, however far apart its matches (an
    hour's first span would have read it span by span): every match seen, so each page knows
    its total and nothing is counted afterwards, and its hits are the plain ordered statement's.
    Its channel is written as a bigint, which the words' GIN index reads with them
    (in_channel), and nowhere as the integer that would replace it (the planner keeps one of
    two equal constants)."""
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    monkeypatch.setattr(search, "PHRASE_FIRST_SPAN", timedelta(hours=1))
    monkeypatch.setattr(search, "PHRASE_WHOLE_BELOW", 10**9)
    q = '"the portfolio"'
    assert search.phrase_pairs(q) is None
    filters = {"channel": portfolios.channel} if channel else {}
    for _, results, statements in pages_of_twelve(q, sort, **filters):
        spans = [sql for sql in statements if '"sent_at" AS "sent_at"' in sql]
        assert len(spans) == 1 and '"sent_at" >=' not in spans[0] and '"sent_at" <=' not in spans[0]
        # the channel once, as the bigint: with the integer beside it the planner keeps that
        assert ("::bigint" in spans[0]) == channel
        assert spans[0].count('"channel_id" + 0)') == channel
        assert not [sql for sql in statements if "COUNT(*)" in sql]
        assert (results.total, results.capped, results.counting) == (12, False, False)


@pytest.mark.parametrize("channel", [False, True])
@pytest.mark.parametrize("sort", ["newest", "oldest"])
@pytest.mark.parametrize("short_most", [0, 10**9])
def test_a_phrase_rare_with_its_common_short_word_is_read_with_it_in_one_statement(
    portfolios: Any, monkeypatch: pytest.MonkeyPatch, sort: str, channel: bool, short_most: int
) -> None:
    """A short word left out of the index's condition (far more common than the long word) is
    read with it when the planner expects it in at most PHRASE_SHORT_MOST rows and the two
    together in at most PHRASE_WHOLE_BELOW (the long word alone in more): then the phrase is one
    statement over the whole archive, every match seen, nothing counted afterwards. Above
    PHRASE_SHORT_MOST the long word alone is read span by span. The hits are the plain ordered
    statement's either way, and a count asked for is the same.

    The planner's rows are those of 10M messages: "the" in 3M, "portfolio" in 100,000, the two
    together in 10."""
    at_10m = {"'portfolio' & 'the'": 10.0, "'portfolio'": 100_000.0, "'the'": 3_000_000.0}
    planner_rows_as_at_10m(monkeypatch, at_10m)
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    monkeypatch.setattr(search, "PHRASE_FIRST_SPAN", timedelta(hours=1))
    monkeypatch.setattr(search, "PHRASE_CHECK_OVER_BITMAP", 10**9)  # no rest at once
    monkeypatch.setattr(search, "PHRASE_SHORT_MOST", short_most)
    q = '"the portfolio"'
    assert search._cheap_short_words(search._parsed(q))[0] == []  # "the" left out by the bounds
    both = "'''portfolio'' & ''the'''::tsquery"
    filters = {"channel": portfolios.channel} if channel else {}
    for data, results, statements in pages_of_twelve(q, sort, **filters):
        spans = [sql for sql in statements if '"sent_at" AS "sent_at"' in sql]
        if short_most:
            assert len(spans) == 1 and both in spans[0], spans
            assert '"sent_at" >=' not in spans[0] and '"sent_at" <=' not in spans[0]
            assert ("::bigint" in spans[0]) == channel
            assert (results.total, results.capped, results.counting) == (12, False, False)
        else:
            assert spans and not [sql for sql in spans if "''the'''::tsquery" in sql]
            if data["page"] == 1:
                assert len(spans) > 1 and results.counting
        assert search.count(Message.objects.all(), data) == 12


@pytest.mark.parametrize("short_most", [0, 10**9])
def test_a_phrase_rare_with_its_common_short_word_is_not_walked_and_is_counted_with_it(
    portfolios: Any, monkeypatch: pytest.MonkeyPatch, short_most: int
) -> None:
    """Its one statement is asked for before any walk, though its long word alone is common
    enough to walk (a walk of the newest messages rarely finds a page of so rare a phrase), and
    the count a page asks for reads the short word from the index too (Matching.fewer). Above
    PHRASE_SHORT_MOST the long word is walked first, and counted alone. The planner's rows are
    those of 10M messages: "the" in 3M, "portfolio" in 200,000 (over PHRASE_WALK_ABOVE), the
    two together in 10."""
    at_10m = {"'portfolio' & 'the'": 10.0, "'portfolio'": 200_000.0, "'the'": 3_000_000.0}
    planner_rows_as_at_10m(monkeypatch, at_10m)
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    monkeypatch.setattr(search, "PHRASE_SHORT_MOST", short_most)
    data = {"q": '"the portfolio"', "channel": portfolios.channel}
    with CaptureQueriesContext(connection) as captured:
        assert search.search(Message.objects.all(), data).hits
        assert search.count(Message.objects.all(), data) == 12
    sent = [c["sql"] for c in captured.captured_queries]
    walks = [sql for sql in sent if ") walked WHERE hit" in sql]
    (counted,) = [sql for sql in sent if "COUNT(*)" in sql]
    assert bool(walks) == (not short_most)
    assert ("'''portfolio'' & ''the'''::tsquery" in counted) == bool(short_most)


@pytest.mark.parametrize("common", [False, True])
@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_a_phrase_read_by_its_pairs_pages_as_the_plain_statement(
    portfolios: Any, monkeypatch: pytest.MonkeyPatch, sort: str, common: bool
) -> None:
    """A pair the planner expects in fewer than PHRASE_WALK_ABOVE rows is read span by span,
    the first span sized to hold the page; a more common one in one ordered statement. Both
    give the plain ordered statement's hits and total."""
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    monkeypatch.setattr(search, "PHRASE_WALK_ABOVE", -1 if common else 10**9)
    monkeypatch.setattr(search, "PAIRS_SHORTEST_SPAN", timedelta(minutes=1))
    q = '"send the"'
    assert search.phrase_pairs(q) is not None
    spans = []
    for data, results, statements in pages_of_twelve(q, sort):
        if results.counting:
            assert search.count(Message.objects.all(), data) == 12
        else:
            assert results.total == 12
        spans += [sql for sql in statements if '"sent_at" AS "sent_at"' in sql]
    assert bool(spans) != common


@pytest.fixture
def statements(world: Any) -> Any:
    """A phrase of long words (no word pairs) in 14 of 30 messages, some sent at the same second,
    and its words the other way round in the rest."""
    seal(
        *[
            inbound(
                "4915112345678",
                "Jonas Weber",
                {
                    "id": f"s.{n}",
                    "timestamp": str(NOW + 300 + n // 3),
                    "type": "text",
                    "text": {
                        "body": "quarterly statement due" if n % 2 else "statement quarterly due"
                    },
                },
            )
            for n in range(28)
        ]
    )
    return world


@pytest.mark.parametrize("walk", [1, 5, 9, 10_000])
@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_a_phrase_walked_in_order_finds_the_plain_orders_hits(
    statements: Any, monkeypatch: pytest.MonkeyPatch, walk: int, sort: str
) -> None:
    """Looked for among the first PHRASE_WALK messages, then span by span, a phrase without
    pairs gives the plain ordered statement's hits, page after page."""
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    monkeypatch.setattr(search, "PHRASE_WALK", walk)
    monkeypatch.setattr(search, "PHRASE_WALK_ABOVE", -1)  # walked however rare its words
    q = '"quarterly statement"'
    assert search.phrase_pairs(q) is None  # long words: the walk's path, not the pairs'
    order = transcript.ASC if sort == "oldest" else transcript.DESC
    plain = Message.objects.filter(search=search.text_query(q)).order_by(*order)
    expected = list(plain.values_list("id", flat=True))
    assert len(expected) == 14
    for page in range(1, 7):
        results = search.search(Message.objects.all(), {"q": q, "sort": sort, "page": page})
        assert [h.message.pk for h in results.hits] == expected[(page - 1) * 3 : page * 3]
        assert results.has_next == (page * 3 < 14)


def test_a_walk_that_finds_the_page_reads_no_span(
    statements: Any, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    """The parse, the participants, the planner's estimate of the words' rows, the walk and the
    hits; the count is asked for afterwards. A walk that found some of the page goes on once,
    as far as their density says the page needs (PHRASE_WALK_MOST at most), and finds it there;
    past that it reads every match in one statement (its words are in few rows:
    PHRASE_WHOLE_BELOW; no edges of the archive to size spans by), which, having read the
    whole archive, needs no count."""
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    monkeypatch.setattr(search, "PHRASE_WALK_ABOVE", -1)
    q = {"q": '"quarterly statement"'}
    with django_assert_num_queries(5):
        search.search(Message.objects.all(), q)
    monkeypatch.setattr(search, "PHRASE_WALK", 2)  # one match of the 4 wanted in 2 rows
    with django_assert_num_queries(6) as captured:  # a walk of 12 rows finds them
        search.search(Message.objects.all(), q)
    walks = [c["sql"] for c in captured.captured_queries if "walked" in c["sql"]]
    assert len(walks) == 2 and "LIMIT 2)" in walks[0] and "LIMIT 12)" in walks[1]
    monkeypatch.setattr(search, "PHRASE_WALK_MOST", 11)
    with django_assert_num_queries(10):  # its work_mem: two savepoint statements, two settings
        search.search(Message.objects.all(), q)


@pytest.mark.parametrize("q", ['"quarterly statement"', '"the statement"'])
def test_a_phrase_whose_words_are_rare_goes_to_its_spans_unwalked(
    statements: Any, monkeypatch: pytest.MonkeyPatch, q: str
) -> None:
    """Below PHRASE_WALK_ABOVE rows (as the planner expects them from the words' index) the
    walk is skipped: the week's span reads more messages for the same cost. Above, walked."""
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    for above, walks in ((10_000, False), (-1, True)):
        monkeypatch.setattr(search, "PHRASE_WALK_ABOVE", above)
        with CaptureQueriesContext(connection) as captured:
            results = search.search(Message.objects.all(), {"q": q})
        walked = [c for c in captured.captured_queries if "walked" in c["sql"]]
        assert bool(walked) == walks
        expected = Message.objects.filter(search=search.text_query(q)).order_by(*transcript.DESC)
        assert [h.message.pk for h in results.hits] == list(
            expected.values_list("id", flat=True)[:3]
        )


def test_the_count_asked_for_afterwards_has_a_budget(
    words: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page that is not the last (or is past it) counts nothing: it says "more than" what it
    has seen. The count asked for afterwards has a budget: a count that overruns it is cancelled
    by PostgreSQL and says None, and the connection is left as it was. A phrase whose spans
    read the whole archive knows its total; a walked one asks for its count as any page."""
    monkeypatch.setattr(search, "PAGE_SIZE", 1)
    monkeypatch.setattr(search, "COUNT_LATER_BUDGET_MS", "10")
    slow = Message.objects.extra(where=["pg_sleep(0.03) IS NOT NULL"])
    results = search.search(slow, {"page": 50})
    assert (results.total, results.capped, len(results.hits)) == (49, True, 0)
    first = search.search(slow, {"q": "bond"})
    assert (first.total, first.capped, len(first.hits), first.has_next) == (1, True, 1, True)
    assert first.counting and search.count(slow, {"q": "bond"}) is None
    every = Message.objects.filter(search=search.text_query('"bond"')).count()
    spans = search.search(slow, {"q": '"bond"'})  # its spans read the whole archive: no count
    assert (spans.total, spans.capped, len(spans.hits)) == (every, False, 1) and every > 1
    assert not spans.counting
    monkeypatch.setattr(search, "PHRASE_WALK_ABOVE", -1)
    walked = search.search(slow, {"q": '"bond"'})
    assert (walked.total, walked.capped, len(walked.hits), walked.counting) == (1, True, 1, True)
    monkeypatch.setattr(search, "COUNT_LATER_BUDGET_MS", "3000")
    assert search.count(Message.objects.all(), {"q": '"bond"'}) == every
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("0",)


def test_the_count_leaves_the_callers_statement_timeout_as_it_was(words: Any) -> None:
    with connection.cursor() as cursor:  # the test runs inside a transaction, like a caller's
        cursor.execute("SET LOCAL statement_timeout = '7s'")
        assert search.count(Message.objects.all(), {"q": "bond"}) > 1
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("7s",)


def test_it_runs_searches_from_the_page_and_records_them(
    client: Any, reviewer: Any, words: Any
) -> None:
    client.force_login(reviewer)
    response = client.get(reverse("review:search"), {"q": '"bond fund"', "direction": "in"})
    html = response.content.decode()
    hit = Message.objects.get(wamid="w.1")
    assert f"?at={hit.pk}#m{hit.pk}" in html and "<mark>bond</mark>" in html
    event = AccessEvent.objects.get()
    assert event.action == "search" and event.detail["query"] == '"bond fund"'
    assert (
        event.detail["filters"] == {"direction": "in", "sort": "newest"}
        or event.detail["filters"]["direction"] == "in"
    )


def test_a_search_page_whose_access_event_fails_is_not_served(
    client: Any, reviewer: Any, words: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event is sent before the template and answered after it (access.recording): the
    template reads nothing (a statement there would fail on the busy connection), the page
    leaves only once its event is written, and one whose event failed does not leave."""
    client.force_login(reviewer)
    with CaptureQueriesContext(connection) as captured:
        page = client.get(reverse("review:search"), {"q": "bond"})
    assert page.status_code == 200 and page.context["results"].hits
    assert AccessEvent.objects.count() == 1
    # sent and answered after the template (inflight's log entry: the SQL, then its values),
    # not executed before it: the test's transaction had begun
    last = captured.captured_queries[-1]["sql"]
    assert last.startswith("INSERT INTO review_accessevent") and " -- [" in last
    not_json = access._RECORD.replace("%s::jsonb", "(%s::text || ' x')::jsonb")
    monkeypatch.setattr(access, "_RECORD", not_json)
    with (
        pytest.raises(DataError, match="invalid input syntax for type json"),
        transaction.atomic(),  # as the request's own failure would be rolled back
    ):
        client.get(reverse("review:search"), {"q": "bond"})
    assert AccessEvent.objects.count() == 1


def test_the_access_event_says_when_the_count_stopped_at_its_cap(
    client: Any, reviewer: Any, admin_user: Any, words: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "More than 1 results", not "1 results", in the access log: the count stopped there."""
    client.force_login(reviewer)
    client.get(reverse("review:search"), {"q": "bond"})
    monkeypatch.setattr(search, "COUNT_CAP", 1)
    client.get(reverse("review:search"), {"q": "bond"})
    counted, capped = AccessEvent.objects.order_by("pk")
    assert counted.detail["results"] > 1 and not counted.detail["more"]
    assert (capped.detail["results"], capped.detail["more"]) == (1, True)
    client.force_login(admin_user)
    log = client.get(reverse("review:access_log")).content.decode()
    assert "more than 1 results" in log
    assert f"· {counted.detail['results']} results" in log


def test_a_page_that_is_not_the_last_asks_for_its_count_afterwards(
    client: Any, reviewer: Any, words: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page shows its hits and "more than" what it has seen at once; its heading then asks
    for the count (htmx), which has a budget of its own and records no second access event."""
    monkeypatch.setattr(search, "PAGE_SIZE", 1)
    client.force_login(reviewer)
    page = client.get(reverse("review:search"), {"q": "bond", "direction": "in"})
    html = page.content.decode()
    heading = re.search(r'<h2 id="hits-title"[^>]*>.*?</h2>', html, re.S)
    assert heading is not None and "More than 1 message " in heading.group(0)
    asks = re.search(r'hx-get="([^"]+)" hx-trigger="load"', heading.group(0))
    assert asks is not None and "counting" in heading.group(0)
    url = asks.group(1).replace("&amp;", "&")
    assert url.startswith(reverse("review:search_count")) and "direction=in" in url
    assert "seen=1" in url and "q=bond" in url
    event = AccessEvent.objects.get()
    assert (event.detail["results"], event.detail["more"]) == (1, True)

    counted = client.get(url).content.decode()  # within COUNT_LATER_BUDGET_MS
    matching = Message.objects.filter(search=search.text_query("bond"), direction="in").count()
    assert f">{matching} messages</h2>" in counted and "hx-get" not in counted
    real = search._capped_count  # and when that runs out too

    def slow(messages: Any, budget_ms: str, **kwargs: Any) -> Any:
        return real(messages.extra(where=["pg_sleep(0.03) IS NOT NULL"]), budget_ms, **kwargs)

    monkeypatch.setattr(search, "_capped_count", slow)
    monkeypatch.setattr(search, "COUNT_LATER_BUDGET_MS", "10")
    late = client.get(url).content.decode()
    assert "More than 1 message " in late and "too many to count quickly" in late
    assert "hx-get" not in late
    assert AccessEvent.objects.count() == 1


@pytest.mark.parametrize("seen", ["", "²", "9" * 5000, "-3", "12"])
def test_the_count_request_takes_any_seen_and_refuses_a_bad_search(
    client: Any, reviewer: Any, words: Any, monkeypatch: pytest.MonkeyPatch, seen: str
) -> None:
    monkeypatch.setattr(
        search, "_capped_count", lambda messages, budget_ms, *, pairs: None
    )  # always too long: the heading falls back to `seen`
    client.force_login(reviewer)
    response = client.get(reverse("review:search_count"), {"q": "bond", "seen": seen})
    assert response.status_code == 200
    expected = "12 messages" if seen == "12" else "0 messages"
    assert f"More than {expected}" in response.content.decode()
    bad = client.get(reverse("review:search_count"), {"q": "bond", "date_from": "not a day"})
    assert bad.status_code == 400


def test_it_explains_a_bad_filter_instead_of_failing(
    client: Any, reviewer: Any, world: Any
) -> None:
    client.force_login(reviewer)
    response = client.get(
        reverse("review:search"), {"q": "x", "date_from": "2026-02-30", "date_to": "nonsense"}
    )
    assert response.status_code == 400
    assert b"Enter a valid date" in response.content
    response = client.get(
        reverse("review:search"), {"date_from": "2026-03-02", "date_to": "2026-03-01"}
    )
    assert b"end date is before the start date" in response.content


def test_it_survives_query_syntax_of_any_kind(client: Any, reviewer: Any, world: Any) -> None:
    client.force_login(reviewer)
    for q in ['"', "-", "OR", "a & b | !c", "(((", "':*", "\\", '-"bond', "🙏"]:
        assert client.get(reverse("review:search"), {"q": q}).status_code == 200, q


def test_it_saves_searches_per_user(client: Any, reviewer: Any, world: Any) -> None:
    client.force_login(reviewer)
    client.post(reverse("review:save_search"), {"name": "Bonds", "query": "q=bond"})
    response = client.post(reverse("review:save_search"), {"name": "Bonds", "query": "q=x"})
    assert response.status_code == 302
    page = client.get(reverse("review:search")).content.decode()
    assert '<a href="?q=bond">Bonds</a>' in page


def test_it_shows_hostile_names_in_hits_as_text(client: Any, reviewer: Any, world: Any) -> None:
    client.force_login(reviewer)
    html = client.get(reverse("review:search"), {"q": "see"}).content.decode()
    assert "↙ from &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html and "<img src=x" not in html


@pytest.fixture
def hold(world: Any, legal: Any) -> Any:
    """A hold on Amelia's conversation, by Legal."""
    return holds.create(
        legal,
        matter="FCA inquiry 42",
        reason="Regulator request",
        scope=HoldScope.build(conversations=[world.amelia.pk]),
    )


def test_legal_hold_names_and_contents_do_not_reach_reviewers_through_search(
    client: Any, reviewer: Any, legal: Any, hold: Any
) -> None:
    client.force_login(reviewer)
    assert "FCA inquiry 42" not in client.get(reverse("review:search")).content.decode()
    held = client.get(reverse("review:search"), {"hold": hold.pk})
    missing = client.get(reverse("review:search"), {"hold": 999999})
    assert held.status_code == missing.status_code
    assert held.context["results"] is None and missing.context["results"] is None
    assert held.context["form"].errors == missing.context["form"].errors != {}
    client.force_login(legal)
    assert client.get(reverse("review:search"), {"hold": hold.pk}).context["results"].hits
    # a search naming no hold: the list of holds is read before the access event is sent
    # (SearchForm.read_choices), not by the template while the event is under way
    page = client.get(reverse("review:search"), {"q": "bond"})
    assert page.status_code == 200 and "FCA inquiry 42" in page.content.decode()


def test_the_page_lists_the_clients_a_search_names(client: Any, reviewer: Any, words: Any) -> None:
    client.force_login(reviewer)
    html = client.get(reverse("review:search"), {"q": "jonas"}).content.decode()
    (convo,) = search.people("jonas")
    link = reverse("review:conversation", args=[convo.pk])
    assert f'<li><a href="{link}">+4915112345678</a>' in html
    assert f"{convo.message_count} messages, last <time" in html


def test_the_page_says_when_nothing_matches(client: Any, reviewer: Any, words: Any) -> None:
    client.force_login(reviewer)
    html = client.get(reverse("review:search"), {"q": "nowhere-to-be-found"}).content.decode()
    assert "<li>No messages match.</li>" in html and "0 messages" in html


@pytest.mark.django_db
def test_the_search_column_keeps_a_large_statistics_sample() -> None:
    """Rare words are estimated from the column's statistics: at the default target a word found
    761 times in 10M messages was estimated at 13,175 and read by walking the newest messages
    (1.55 s); at 1,000, through the GIN (19 ms; messaging 0021, docs/SCALE.md §7e)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstattarget FROM pg_attribute"
            " WHERE attrelid = 'messaging_message'::regclass AND attname = 'search'"
        )
        assert cursor.fetchone()[0] == 1000


def test_a_search_page_reads_its_filters_lists_once_each_without_a_cursor(
    client: Any, legal: Any, hold: Any
) -> None:
    """The channels', tags' and legal holds' lists (search.ListedChoiceField, the hold filter
    too) are each one plain statement, however often the page draws and cleans them: no
    server-side cursor (DECLARE, FETCH, CLOSE) for a list of a few rows."""
    client.force_login(legal)
    client.get(reverse("review:search"))
    with CaptureQueriesContext(connection) as captured:
        page = client.get(reverse("review:search"), {"hold": hold.pk, "q": "fund"})
    assert page.status_code == 200 and "FCA inquiry 42" in page.content.decode()
    sent = [q["sql"] for q in captured.captured_queries]
    assert not [sql for sql in sent if re.match(r"\s*(DECLARE|FETCH|CLOSE)\b", sql)]
    held = [sql for sql in sent if re.match(r'SELECT .* FROM "retention_legalhold"', sql)]
    assert len(held) == 1, held
