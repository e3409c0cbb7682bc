"""Search through the API (api/search.py): the search page's query language and filters, the
same hits in the same order as the page, cursor pages, and a SEARCH access event per call."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging.models import Channel, Message
from review import search, transcript
from review.models import AccessEvent
from tests.api.conftest import World, api
from tests.api.test_conversations import matches_schema
from tests.review.conftest import NOW, inbound, planner_rows_as_at_10m, seal

SEARCH = "/api/v1/search/"


@pytest.fixture
def notes(world: World) -> World:
    """70 notes from two clients, several sent in the same second (ties the order must break)."""
    seal(
        *[
            inbound(
                "447700900123" if n % 3 else "15550001234",
                "Amelia Hart" if n % 3 else "Hostile",
                {
                    "id": f"wamid.note-{n}",
                    "timestamp": str(NOW + 1000 + n // 4),
                    "type": "text",
                    "text": {"body": f"portfolio note {n} {'urgent' if n % 5 == 0 else ''}"},
                },
            )
            for n in range(70)
        ]
    )
    return world


def page_ids(user: Any, query: dict[str, str]) -> list[int]:
    """Every hit of the search page, page after page, as a reviewer sees them."""
    browser = Client()
    browser.force_login(user)
    ids: list[int] = []
    for number in range(1, 50):
        results = browser.get("/search/", {**query, "page": str(number)}).context["results"]
        ids += [hit.message.pk for hit in results.hits]
        if not results.has_next:
            return ids
    raise AssertionError("the page never ended")


def api_ids(user: Any, query: dict[str, str], limit: int) -> list[int]:
    """Every hit through the API, cursor after cursor (a cursor that does not move on fails
    here rather than paging forever)."""
    client, ids, following = api(user), [], None
    body = client.get(SEARCH, {**query, "limit": str(limit)}).json()
    for _ in range(500):
        matches_schema(client, "SearchPage", body)
        ids += [hit["id"] for hit in body["results"]]
        following = body["next"]
        if following is None:
            return ids
        body = client.get(following).json()
    raise AssertionError(f"the pages never ended: {len(ids)} hits, {len(set(ids))} distinct")


@pytest.mark.parametrize(
    "query",
    [
        {"q": "portfolio"},
        {"q": "portfolio", "sort": "oldest"},
        {"q": "portfolio urgent", "sort": "relevance"},
        {"q": '"portfolio note" -urgent'},
        {"q": '"note 1"'},  # short words: found through their pairs (search.matching)
        {"q": 'portfolio "note 2" -urgent', "sort": "oldest"},
        {"participant": "amelia", "sort": "oldest"},
        {"direction": "in", "date_from": "2026-09-21", "date_to": "2026-09-22"},
        {},
    ],
)
def test_it_finds_what_the_page_finds_in_its_order(
    notes: World, reviewer: Any, query: dict[str, str]
) -> None:
    expected = page_ids(reviewer, query)
    assert len(expected) > 0
    for limit in (7, 25, 1000):
        assert api_ids(reviewer, query, limit) == expected


def test_a_call_sends_as_many_statements_for_many_hits_as_for_one(
    notes: World, reviewer: Any
) -> None:
    """A hit's fields are read with the page (search._HITS), none a hit on its own."""
    client, counts = api(reviewer), []
    client.get(SEARCH, {"q": "portfolio"})  # the token's first use is recorded once
    for limit in (1, 5):
        with CaptureQueriesContext(connection) as captured:
            body = client.get(SEARCH, {"q": "portfolio", "limit": str(limit)}).json()
        assert len(body["results"]) == limit
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


def test_a_hit_says_what_the_page_shows(notes: World, reviewer: Any) -> None:
    hit = api(reviewer).get(SEARCH, {"q": "guaranteed"}).json()["results"][0]
    assert hit["wamid"] == "wamid.deleted"
    assert hit["snippet"] == "<mark>guaranteed</mark> returns, tell nobody"
    assert hit["conversation"] == notes.hostile.pk and hit["source"] == "captured"


def test_the_client_cannot_write_markup_into_a_snippet(notes: World, reviewer: Any) -> None:
    hit = api(reviewer).get(SEARCH, {"q": "see"}).json()["results"][0]
    assert "<" not in hit["snippet"].replace("<mark>", "").replace("</mark>", "")
    assert "&gt;" in hit["snippet"] and "<mark>see</mark>" in hit["snippet"]


def test_each_call_is_logged_as_a_search(notes: World, auditor: Any) -> None:
    api(auditor).get(SEARCH, {"q": "portfolio", "direction": "in", "limit": "5"})
    event = AccessEvent.objects.get()
    assert event.action == AccessEvent.Action.SEARCH
    assert event.detail == {
        "query": "portfolio",
        "filters": {"direction": "in"},
        "results": 5,
        "via": "api",
        "after": None,
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"date_from": "2026-13-01"}, "date_from"),
        ({"date_from": "2026-09-22", "date_to": "2026-09-21"}, "date_to"),
        ({"channel": "abc"}, "channel"),
        ({"channel": "999999"}, "channel"),
        ({"tag": "99999999999999999999"}, "tag"),
        ({"direction": "sideways"}, "direction"),
        ({"type": "hologram"}, "type"),
        ({"sort": "random"}, "sort"),
        ({"flag": "maybe"}, "flag"),
        ({"q": "x" * 501}, "q"),
        ({"after": "not-a-hit"}, "after"),
        ({"after": "999999"}, "after"),
        ({"q": "portfolio", "sort": "relevance", "after": "12"}, "after"),
        ({"limit": "-1"}, "limit"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(
    notes: World, reviewer: Any, query: dict[str, str], field: str
) -> None:
    response = api(reviewer).get(SEARCH, query)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert list(response.json()["errors"]) == [field]
    assert not AccessEvent.objects.exists()


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=st.sampled_from(["q", "participant", "date_from", "type", "after", "sort", "tag"]),
    value=st.text(
        alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
        max_size=40,
    ),
)
def test_no_parameter_value_is_a_server_error(
    world: World, reviewer: Any, name: str, value: str
) -> None:
    assert api(reviewer).get(SEARCH, {name: value}).status_code in (200, 400)


def test_an_outsider_is_refused_and_nothing_is_logged(world: World, outsider: Any) -> None:
    assert api(outsider).get(SEARCH, {"q": "portfolio"}).status_code == 403
    assert not AccessEvent.objects.exists()


@pytest.mark.parametrize("walk", [3, 12, 40_000])
def test_a_phrase_pages_as_the_page_does_whatever_its_walk(
    notes: World, reviewer: Any, monkeypatch: pytest.MonkeyPatch, walk: int
) -> None:
    """A phrase without word pairs is looked for among the first search.PHRASE_WALK messages
    after the cursor, then through the GIN: the same hits in the same order either way."""
    monkeypatch.setattr(search, "PHRASE_WALK", walk)
    query = {"q": '"portfolio note" -urgent'}
    expected = page_ids(reviewer, query)
    assert len(expected) > 7
    for limit in (2, 7):
        assert api_ids(reviewer, query, limit) == expected


@pytest.mark.parametrize("sort", ["newest", "oldest"])
@pytest.mark.parametrize("q", ['"portfolio note" -urgent', '"will you"'])
def test_a_phrase_read_span_by_span_pages_as_the_plain_order_does(
    notes: World, reviewer: Any, monkeypatch: pytest.MonkeyPatch, q: str, sort: str
) -> None:
    """A phrase the page reads span by span (its words or its pairs rare enough) is read so
    through the API too, each call's spans starting at its cursor's time: the hits of the plain
    ordered statement, in its order, whatever the page size, and no walk."""
    seal(
        *[
            inbound(
                "447700900123",
                "Amelia Hart",
                {
                    "id": f"wamid.call-{n}",
                    "timestamp": str(NOW + 2000 + 3 * n),
                    "type": "text",
                    "text": {"body": f"will you call {n}"},
                },
            )
            for n in range(12)
        ]
    )
    assert (search.phrase_pairs(q) is not None) == (q == '"will you"')
    monkeypatch.setattr(search, "PHRASE_WALK_ABOVE", 10**9)
    monkeypatch.setattr(search, "PHRASE_FIRST_SPAN", timedelta(seconds=2))
    monkeypatch.setattr(search, "PAIRS_SHORTEST_SPAN", timedelta(seconds=1))
    order = transcript.ASC if sort == "oldest" else transcript.DESC
    plain = Message.objects.filter(search=search.text_query(q)).exclude(
        type__in=["reaction", "revoke"]
    )
    expected = list(plain.order_by(*order).values_list("id", flat=True))
    assert len(expected) > 7
    with CaptureQueriesContext(connection) as captured:
        for limit in (2, 7):
            assert api_ids(reviewer, {"q": q, "sort": sort}, limit) == expected
    statements = [c["sql"] for c in captured.captured_queries]
    assert not [sql for sql in statements if "walked" in sql]
    assert [sql for sql in statements if '"messaging_message"."sent_at" AS "sent_at"' in sql]


def test_a_calls_spans_start_at_its_cursor(
    notes: World, reviewer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a message a year after the notes, the first call's spans grow from the archive's
    newest edge down to them; a call after a cursor among them reads one span, from the
    cursor's time, not that year again."""
    seal(
        inbound(
            "447700900123",
            "Amelia Hart",
            {
                "id": "wamid.a-year-on",
                "timestamp": str(NOW + 365 * 86_400),
                "type": "text",
                "text": {"body": "a year on"},
            },
        )
    )
    monkeypatch.setattr(search, "PHRASE_WALK_ABOVE", 10**9)
    monkeypatch.setattr(search, "PHRASE_FIRST_SPAN", timedelta(hours=1))
    monkeypatch.setattr(search, "PHRASE_WHOLE_BELOW", -1)  # span by span, however rare
    client, query = api(reviewer), {"q": '"portfolio note" -urgent', "limit": "2"}

    def span_statements(params: dict[str, str]) -> tuple[Any, int]:
        with CaptureQueriesContext(connection) as captured:
            body = client.get(SEARCH, params).json()
        span = '"messaging_message"."sent_at" AS "sent_at"'
        return body, len([c for c in captured.captured_queries if span in c["sql"]])

    first, spans = span_statements(query)
    assert spans > 1 and first["next"]
    after = first["results"][-1]["id"]
    second, spans = span_statements({**query, "after": str(after)})
    assert spans == 1 and len(second["results"]) == 2


@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_a_phrase_read_in_one_statement_in_a_channel_pages_from_its_cursor(
    notes: World, reviewer: Any, monkeypatch: pytest.MonkeyPatch, sort: str
) -> None:
    """A rare phrase in a channel is one statement (its channel read from the words' index,
    search.in_channel) through the API too, each call's from its cursor: the plain ordered
    statement's hits, whatever the page size, and a message of another channel never."""
    other = Channel.objects.create(name="Branch", phone_number_id="400500600")
    monkeypatch.setattr(search, "PHRASE_WHOLE_BELOW", 10**9)
    q = '"portfolio note" -urgent'
    order = transcript.ASC if sort == "oldest" else transcript.DESC
    plain = Message.objects.filter(search=search.text_query(q), channel=notes.channel).exclude(
        type__in=["reaction", "revoke"]
    )
    expected = list(plain.order_by(*order).values_list("id", flat=True))
    assert len(expected) > 7
    query = {"q": q, "sort": sort, "channel": str(notes.channel.pk)}
    with CaptureQueriesContext(connection) as captured:
        for limit in (2, 7):
            assert api_ids(reviewer, query, limit) == expected
    spans = [c["sql"] for c in captured.captured_queries if '"sent_at" AS "sent_at"' in c["sql"]]
    assert spans and all("::bigint" in sql for sql in spans)
    assert not api_ids(reviewer, {**query, "channel": str(other.pk)}, 2)


@pytest.mark.parametrize("channel", [False, True])
@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_a_phrase_read_with_its_common_short_word_pages_from_its_cursor(
    notes: World, reviewer: Any, monkeypatch: pytest.MonkeyPatch, sort: str, channel: bool
) -> None:
    """A phrase read with the common short word its index's condition left out, in one
    statement (search.PHRASE_SHORT_MOST), is read so through the API too, each call's from its
    cursor: the plain ordered statement's hits, whatever the page size. The planner's rows are
    those of 10M messages: "note" in 3M, "portfolio" in 100,000, the two in 10."""
    at_10m = {"'portfolio' & 'note'": 10.0, "'portfolio'": 100_000.0, "'note'": 3_000_000.0}
    planner_rows_as_at_10m(monkeypatch, at_10m)
    q = '"portfolio note" -urgent'
    plain = Message.objects.filter(search=search.text_query(q)).exclude(
        type__in=["reaction", "revoke"]
    )
    order = transcript.ASC if sort == "oldest" else transcript.DESC
    expected = list(plain.order_by(*order).values_list("id", flat=True))
    assert len(expected) > 7
    query = {"q": q, "sort": sort, **({"channel": str(notes.channel.pk)} if channel else {})}
    with CaptureQueriesContext(connection) as captured:
        for limit in (2, 7):
            assert api_ids(reviewer, query, limit) == expected
    spans = [c["sql"] for c in captured.captured_queries if '"sent_at" AS "sent_at"' in c["sql"]]
    assert spans and all("'''portfolio'' & ''note'''::tsquery" in sql for sql in spans)
    assert all(("::bigint" in sql) == channel for sql in spans)
