"""archive.prepared: a statement prepared once a database session gives what the statement
gives, is one statement to Django each time, and is prepared again whenever its session or its
first execution leaves it in doubt."""

import uuid
from typing import Any

import pytest
from django.db import DatabaseError, DataError, connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import prepared

# text as PostgreSQL stores it (no NUL, no lone surrogates)
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
BIGINT = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def fresh(sql: str) -> str:
    """`sql` as no session has prepared it yet (a comment of its own, last on its line)."""
    return f"{sql} -- {uuid.uuid4().hex}"


def run(sql: str, params: Any, *, prepare: bool) -> tuple[list[tuple[Any, ...]], list[str]]:
    with CaptureQueriesContext(connection) as captured, connection.cursor() as cursor:
        if prepare:
            prepared.execute(cursor, sql, params)
        else:
            cursor.execute(sql, params)
        rows = cursor.fetchall()
    return rows, [q["sql"] for q in captured.captured_queries]


POSITIONAL = (
    "SELECT %s::text || '!', x, cardinality(%s::bigint[]), %s::bigint[]"
    " FROM unnest(%s::bigint[]) AS x ORDER BY x"
)
NAMED = "SELECT %(word)s::text, upper(%(word)s), %(n)s::bigint + 1, %(word)s = %(other)s::text"


def outcome(sql: str, params: Any, *, prepare: bool) -> Any:
    """The rows, or the kind of error PostgreSQL answered with."""
    try:
        with transaction.atomic():
            return run(sql, params, prepare=prepare)[0]
    except DatabaseError as error:
        return type(error)


@pytest.mark.django_db
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    word=TEXT,
    other=TEXT,
    numbers=st.lists(BIGINT, max_size=5),
    # not the least bigint: sent as a literal, "-9223372036854775808::bigint" casts before it
    # negates and overflows (psycopg's client-side binding); EXECUTE's parameter does not
    n=BIGINT.filter(lambda n: n > -(2**63)),
)
def test_it_gives_what_the_statement_gives(word, other, numbers, n):
    positional = [word, numbers, numbers, numbers]
    expected = outcome(POSITIONAL, positional, prepare=False)
    assert outcome(POSITIONAL, positional, prepare=True) == expected
    named = {"word": word, "other": other, "n": n}
    expected = outcome(NAMED, named, prepare=False)
    assert outcome(NAMED, named, prepare=True) == expected


@pytest.mark.django_db
def test_it_prepares_once_a_session_in_the_same_statement_as_the_first_execution():
    sql = fresh("SELECT %s::int * 2")
    first, sent = run(sql, [21], prepare=True)
    assert first == [(42,)]
    assert len(sent) == 1 and sent[0].startswith("PREPARE cw_") and "\n; EXECUTE cw_" in sent[0]
    again, sent_again = run(sql, [5], prepare=True)
    assert again == [(10,)]
    assert len(sent_again) == 1 and sent_again[0].startswith("EXECUTE cw_")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            [f"%{sql[-32:]}%"],
        )
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db
def test_a_rollback_leaves_it_prepared():
    sql = fresh("SELECT %s::int + 1")
    with pytest.raises(RuntimeError), transaction.atomic():
        assert run(sql, [1], prepare=True)[0] == [(2,)]
        raise RuntimeError
    rows, sent = run(sql, [2], prepare=True)
    assert rows == [(3,)] and sent[0].startswith("EXECUTE")


@pytest.mark.django_db(transaction=True)
def test_a_new_connection_prepares_again():
    sql = fresh("SELECT %s::text")
    run(sql, ["a"], prepare=True)
    connection.close()
    rows, sent = run(sql, ["b"], prepare=True)
    assert rows == [("b",)] and sent[0].startswith("PREPARE")


@pytest.mark.django_db
def test_a_first_execution_that_failed_is_prepared_again_under_a_new_name():
    sql = fresh("SELECT 1 / %s::int")
    failing = CaptureQueriesContext(connection)
    with failing as failed, pytest.raises(DataError), transaction.atomic():
        run(sql, [0], prepare=True)  # PREPARE took effect, EXECUTE divided by zero
    first = next(q["sql"] for q in failed.captured_queries if "PREPARE" in q["sql"]).split()[1]
    rows, sent = run(sql, [1], prepare=True)
    assert rows == [(1,)]
    assert sent[0].startswith("PREPARE") and sent[0].split()[1] != first


@pytest.mark.django_db
def test_a_prepared_statement_that_failed_is_prepared_again():
    """As when a column's type changed under it, or the session's statements were discarded."""
    sql = fresh("SELECT %s::int - 1")
    _, sent = run(sql, [1], prepare=True)
    name = sent[0].split()[1]
    with connection.cursor() as cursor:
        cursor.execute(f"DEALLOCATE {name}")
    with pytest.raises(DatabaseError), transaction.atomic():
        run(sql, [1], prepare=True)
    rows, sent = run(sql, [3], prepare=True)
    assert rows == [(2,)]
    assert sent[0].startswith("PREPARE") and sent[0].split()[1] != name


@pytest.mark.django_db
def test_it_refuses_sql_it_cannot_number():
    with connection.cursor() as cursor, pytest.raises(ValueError, match="%%"):
        prepared.execute(cursor, "SELECT '100%%'", [])
    with connection.cursor() as cursor, pytest.raises(ValueError, match="2 placeholders, 1"):
        prepared.execute(cursor, "SELECT %s, %s", [1])
    with connection.cursor() as cursor, pytest.raises(ValueError, match="one kind"):
        prepared.execute(cursor, "SELECT %s, %(a)s", [1, 2])
