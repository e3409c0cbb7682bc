"""Phrases found through their word pairs (review/phrases.py, messaging 0020), on PostgreSQL:
the pairs a query implies hold for every message it matches, and search uses their index."""

import json
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exports.scope import Scope
from messaging.models import Message
from retention.holds import HoldScope
from review import phrases, search
from tests.review.conftest import NOW, explain, inbound, seal, work_mem_seen


def tsquery(q: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT websearch_to_tsquery('simple', %s)::text", [q])
        (text,) = cursor.fetchone()
    return str(text)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ('"will you"', ["will_you"]),
        ('"will you" call', ["will_you"]),
        ('"can you call" "me now"', ["can_you", "you_call", "me_now"]),
        ('"the follow-up"', []),  # the parser's hyphenated word: 'follow-up' <-> 'follow' <-> 'up'
        ('"send the portfolio to me"', ["send_the", "to_me"]),  # words of 4 at most
        ('"will you" OR call', []),  # a phrase under OR is not required
        ('-"will you" call', []),  # nor one excluded
        ("will you", []),  # words anywhere, no phrase
        ("\"it's O'Neil\"", ["it_s", "s_o", "o_neil"]),
        ('"Grüße aus Köln"', ["aus_köln"]),
    ],
)
def test_it_asks_for_the_pairs_the_required_phrases_imply(
    db: None, q: str, expected: list[str]
) -> None:
    assert phrases.pairs(tsquery(q)) == expected


def test_it_reads_escaped_lexemes_as_postgresql_prints_them() -> None:
    assert phrases.pairs(r"'it''s' <-> 'a\\b'") == ["it's_a\\b"]
    assert phrases.pairs_query(r"'it''s' <-> 'a\\b'") == r"'it''s_a\\b'"
    assert phrases.pairs("'a' <-> 'b':*") == []  # a prefix is not a whole word
    assert phrases.pairs("") == []
    with pytest.raises(ValueError, match="tsquery"):
        phrases.pairs("'a' <-> (")


WORDS = [
    "the",
    "and",
    "you",
    "will",
    "it's",
    "o'neil",
    "a\\b",
    "e-mail",
    "köln",
    "x:y",
    "é",
    "fund",
]
WORDS += ["portfolio", "meeting", "ab'c", "müll"]
texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=8).map(" ".join)
part = st.one_of(
    st.sampled_from(WORDS),
    st.lists(st.sampled_from(WORDS), min_size=2, max_size=3).map(lambda w: f'"{" ".join(w)}"'),
)
queries = st.lists(st.tuples(st.sampled_from(["", "-", "OR "]), part), min_size=1, max_size=3).map(
    lambda parts: " ".join(prefix + p for prefix, p in parts)
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(q=queries, bodies=st.lists(texts, min_size=1, max_size=12))
def test_every_message_a_query_matches_holds_its_pairs(db: None, q: str, bodies: list[str]) -> None:
    """The pairs are a necessary condition: never a message the phrase finds left out."""
    wanted = phrases.pairs_query(tsquery(q))
    assume(wanted is not None)  # a query that implies no pairs asks nothing of the index
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT body, to_tsvector('simple', body) @@ websearch_to_tsquery('simple', %s),"
            " message_word_pairs(to_tsvector('simple', body)) @@ %s::tsquery"
            " FROM unnest(%s::text[]) body",
            [q, wanted, bodies],
        )
        for body, matches, paired in cursor.fetchall():
            assert paired or not matches, (q, wanted, body)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ('"nakuwou the"', ["nakuwou"]),
        ('"send the portfolio to me" fund', ["portfolio"]),  # words of 4 at most are short
        ('"the portfolio" meeting', ["portfolio", "meeting"]),  # required plain words count
        ('"quarterly statement"', []),  # no short word: the index reads nothing in vain
        ('"the and"', []),  # no long word (the pairs serve it)
        ('"the portfolio" OR meeting', []),  # nothing required under OR
        ('-"the portfolio" fund', []),  # nor excluded
        ('"the follow-up"', ["follow-up", "follow"]),
    ],
)
def test_a_phrase_without_pairs_is_asked_of_its_long_words(
    db: None, q: str, expected: list[str]
) -> None:
    assert phrases.long_words(tsquery(q)) == expected


@pytest.mark.parametrize(
    ("q", "rare", "expected"),
    [
        ('"adviser gubu"', {"gubu"}, []),  # every word kept: the query itself is the condition
        ('"send the portfolio" gubu', {"gubu"}, ["portfolio", "gubu"]),  # "send" is not rare
        ('"nakuwou the"', {"the"}, []),  # every word kept: the query itself is the condition
        ('"nakuwou the" OR gubu', {"gubu"}, []),  # only what every match must hold
    ],
)
def test_its_rare_short_words_are_asked_of_too(
    db: None, q: str, rare: set[str], expected: list[str]
) -> None:
    assert phrases.short_words(tsquery('"send the portfolio" gubu')) == ["send", "the", "gubu"]
    assert phrases.long_words(tsquery(q), rare) == expected


# a phrase of a long and a short word either way round, then anything
unpaired = st.tuples(
    st.sampled_from(["portfolio", "meeting", "e-mail"]),
    st.sampled_from(["the", "and", "you", "fund", "köln", "é"]),
    st.booleans(),
    st.lists(st.tuples(st.sampled_from(["", "-", "OR "]), st.sampled_from(WORDS)), max_size=2),
).map(
    lambda t: (
        (f'"{t[0]} {t[1]}"' if t[2] else f'"{t[1]} {t[0]}"')
        + "".join(f" {prefix}{word}" for prefix, word in t[3])
    )
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    q=st.one_of(queries, unpaired),
    bodies=st.lists(texts, min_size=1, max_size=12),
    rare=st.sets(st.sampled_from(["the", "and", "you", "fund", "köln", "é"])),
)
def test_every_message_a_query_matches_holds_its_long_words(
    db: None, q: str, bodies: list[str], rare: set[str]
) -> None:
    """The long words, with whichever short words are called rare, are a necessary condition:
    never a message the query finds left out."""
    wanted = phrases.all_of(phrases.long_words(tsquery(q), rare))
    assume(wanted is not None)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT body, to_tsvector('simple', body) @@ websearch_to_tsquery('simple', %s),"
            " to_tsvector('simple', body) @@ %s::tsquery FROM unnest(%s::text[]) body",
            [q, wanted, bodies],
        )
        for body, matches, held in cursor.fetchall():
            assert held or not matches, (q, wanted, body)


def test_it_pairs_only_short_words(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(lexeme) FROM unnest(message_word_pairs(to_tsvector('simple', %s)))",
            ["Will you send the portfolio to me, will you?"],
        )
        (pairs,) = cursor.fetchone()
    assert set(pairs) == {"will_you", "you_send", "send_the", "to_me", "me_will"}


@pytest.fixture
def sayings(world: Any) -> Any:
    bodies = ["will you call me", "you will call", "call you will", "will call you"]
    seal(
        *[
            inbound(
                "4915112345678",
                "Jonas Weber",
                {"id": f"p.{n}", "timestamp": str(NOW + n), "type": "text", "text": {"body": b}},
            )
            for n, b in enumerate(bodies)
        ]
    )
    return world


def test_search_finds_a_phrase_through_its_pairs_index(sayings: Any) -> None:
    results = search.search(Message.objects.all(), {"q": '"will you" call'})
    assert [hit.message.wamid for hit in results.hits] == ["p.0"]
    assert {
        h.message.wamid for h in search.search(Message.objects.all(), {"q": '"you will"'}).hits
    } == {
        "p.1",
        "p.2",
    }
    condition = search.phrase_pairs('"will you"')
    assert condition is not None
    # the condition alone, so that no other index can serve the statement: the expression
    # search writes must be the index's for PostgreSQL to use it
    plan = json.dumps(explain(Message.objects.filter(condition).values("id"), seqscan=False))
    assert "message_phrase_pairs" in plan


def test_a_phrase_read_by_its_pairs_leaves_work_mem_as_it_was(sayings: Any) -> None:
    """Its statement runs with search.SEARCH_WORK_MEM, and inside a caller's transaction (this
    test's) the setting is put back: a released savepoint keeps what SET LOCAL did."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW work_mem")
        (before,) = cursor.fetchone()
        with search._local_settings(work_mem=search.SEARCH_WORK_MEM):
            cursor.execute("SHOW work_mem")
            assert cursor.fetchone() == (search.SEARCH_WORK_MEM,)
        assert search.search(Message.objects.all(), {"q": '"will you" call'}).total == 1
        cursor.execute("SHOW work_mem")
        assert cursor.fetchone() == (before,) != (search.SEARCH_WORK_MEM,)


@pytest.mark.parametrize("common", [False, True])
@pytest.mark.parametrize("page_size", [1, 25])
def test_every_statement_reading_the_pairs_runs_with_their_work_mem(
    sayings: Any, monkeypatch: pytest.MonkeyPatch, page_size: int, common: bool
) -> None:
    """The page's (one statement for a common pair, its spans for a rarer one) and the count's
    asked for afterwards; no other statement. The planner's estimate of the pairs' rows
    (EXPLAIN) reads nothing."""
    monkeypatch.setattr(search, "PAGE_SIZE", page_size)
    monkeypatch.setattr(search, "PHRASE_WALK_ABOVE", -1 if common else 10**9)
    with work_mem_seen(lambda sql: "message_word_pairs" in sql) as seen:
        results = search.search(Message.objects.all(), {"q": '"will call"'})
        counted = search.count(Message.objects.all(), {"q": '"will call"'})
    assert counted == 2 and results.has_next == (page_size == 1)
    # a common pair's page of 1 is one ordered statement: it asks for its count afterwards
    assert results.total == (1 if page_size == 1 and common else 2)
    pairs = [memory for reads_pairs, memory in seen if reads_pairs]
    assert pairs and set(pairs) == {search.SEARCH_WORK_MEM}
    assert search.SEARCH_WORK_MEM not in [memory for reads, memory in seen if not reads]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("wume wume", "wume"),
        ("risk  charge risk", "risk charge"),
        ("Risk risk", "Risk risk"),  # only exact repeats: PostgreSQL lowers the case, not Python
        ("tax tax", "tax"),
        ('"the and" the', '"the and" the'),  # quotes, OR, exclusion: left as they are
        ("tax OR tax", "tax OR tax"),
        ("tax -tax", "tax -tax"),
        ("tax", "tax"),
        ("", ""),
    ],
)
def test_a_word_repeated_exactly_is_asked_once(q: str, expected: str) -> None:
    assert search.once(q) == expected


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    q=st.lists(st.sampled_from([*WORDS, "OR", "-the", "The", "THE"]), min_size=1, max_size=6).map(
        " ".join
    ),
    bodies=st.lists(texts, min_size=1, max_size=12),
)
def test_the_query_asked_once_matches_what_the_query_matches(
    db: None, q: str, bodies: list[str]
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT body, to_tsvector('simple', body) @@ websearch_to_tsquery('simple', %s),"
            " to_tsvector('simple', body) @@ websearch_to_tsquery('simple', %s)"
            " FROM unnest(%s::text[]) body",
            [q, search.once(q), bodies],
        )
        for body, matches, once in cursor.fetchall():
            assert matches == once, (q, search.once(q), body)


def test_a_repeated_word_is_estimated_as_the_word(db: None) -> None:
    """The planner's estimate for "wume wume" is the word's, not its square (on a table of this
    test's own, which ANALYZE sees whole inside the test's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE said AS SELECT to_tsvector('simple', CASE WHEN n % 2 = 0"
            " THEN 'wume report' ELSE 'report' END) AS search FROM generate_series(1, 2000) n"
        )
        cursor.execute("ANALYZE said")

        def estimate(q: str) -> int:
            cursor.execute(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM said"
                " WHERE search @@ websearch_to_tsquery('simple', %s)",
                [search.once(q)],
            )
            (document,) = cursor.fetchone()
            plan = document if isinstance(document, list) else json.loads(document)
            return int(plan[0]["Plan"]["Plan Rows"])

        assert 900 <= estimate("wume") <= 1100
        assert estimate("wume wume") == estimate("wume")


@pytest.mark.parametrize("q", ['"will you" call', '"you will"', '"call you"'])
def test_a_hold_and_an_export_find_a_phrase_through_its_pairs(sayings: Any, q: str) -> None:
    """A hold's and an export's stored search are written by search.matching, as the page's:
    the same messages as the plain query, found through the word pairs' index."""
    plain = sorted(Message.objects.filter(search=search.text_query(q)).values_list("id", flat=True))
    for rows in (HoldScope(query={"q": q}).messages(), Scope("search", query={"q": q}).messages()):
        assert sorted(rows.values_list("id", flat=True)) == plain
        assert "message_phrase_pairs" in json.dumps(explain(rows.values("id"), seqscan=False))
