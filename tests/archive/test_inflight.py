"""archive.inflight: a statement sent before a block is under way while the block runs, is
answered (committed, in autocommit) before the block's end returns, raises when it failed, and
leaves the connection free whatever happened."""

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import inflight
from tests.conftest import superuser_connect

TABLE = "inflight_probe"


@pytest.fixture
def probe_table(committed: None) -> Iterator[str]:
    """A table of its own, made by the superuser (the runtime role may not) for the runtime
    role."""
    name = f"{TABLE}_{uuid.uuid4().hex[:8]}"
    with superuser_connect(connection.settings_dict["NAME"]) as owner:
        owner.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, note text, detail jsonb)")
        runtime = connection.settings_dict["USER"]
        owner.execute(f"GRANT SELECT, INSERT, DELETE ON {name} TO {runtime}")
    yield name
    with superuser_connect(connection.settings_dict["NAME"]) as owner:
        owner.execute(f"DROP TABLE {name}")


def rows(table: str) -> list[tuple[int, str | None]]:
    """What another session sees: committed rows only."""
    with superuser_connect(connection.settings_dict["NAME"]) as other:
        return other.execute(f"SELECT id, note FROM {table} ORDER BY id").fetchall()


def test_the_block_runs_while_the_statement_is_under_way(committed: None) -> None:
    started = time.perf_counter()
    with inflight.sent("SELECT pg_sleep(%s::float8)", ["0.4"]):
        entered = time.perf_counter() - started
    ended = time.perf_counter() - started
    assert entered < 0.2  # sending did not wait for the answer
    assert ended >= 0.4  # the block's end did


def test_a_statement_sent_is_committed_when_the_block_ends(probe_table: str) -> None:
    with inflight.sent(f"INSERT INTO {probe_table} VALUES (%s, %s, %s::jsonb)", ["1", "x", "{}"]):
        pass
    assert rows(probe_table) == [(1, "x")]
    with connection.cursor() as cursor:  # the connection is free again
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_a_statement_that_fails_raises_when_the_block_ends(probe_table: str) -> None:
    insert = f"INSERT INTO {probe_table} (id, note) VALUES (%s, %s)"
    with inflight.sent(insert, ["1", "first"]):
        pass
    ran = []
    with (
        pytest.raises(IntegrityError, match="duplicate key"),  # Django's, as its cursor raises
        inflight.sent(insert, ["1", "again"]),
    ):
        ran.append(True)
    assert ran == [True]
    assert rows(probe_table) == [(1, "first")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)


def test_the_blocks_own_exception_goes_on_and_the_statement_is_still_answered(
    probe_table: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        pytest.raises(ZeroDivisionError),
        inflight.sent(f"INSERT INTO {probe_table} (id) VALUES (%s)", ["7"]),
    ):
        _ = 1 / 0
    assert rows(probe_table) == [(7, None)]  # autocommit: it stands, as record_access's did
    with (
        pytest.raises(ZeroDivisionError),
        inflight.sent(f"INSERT INTO {probe_table} (id) VALUES (%s)", ["7"]),
    ):
        _ = 1 / 0
    assert "failed too" in caplog.text and "duplicate key" in caplog.text
    with connection.cursor() as cursor:
        cursor.execute("SELECT 3")
        assert cursor.fetchone() == (3,)


def test_a_statement_inside_the_block_is_refused_not_mixed_up(probe_table: str) -> None:
    with (
        pytest.raises(DatabaseError, match="another command is already in progress"),
        inflight.sent(f"INSERT INTO {probe_table} (id) VALUES (%s)", ["1"]),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT 1")
    assert rows(probe_table) == [(1, None)]


def test_in_a_transaction_begun_it_is_sent_and_belongs_to_the_transaction(
    probe_table: str,
) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        with connection.cursor() as cursor:  # psycopg's BEGIN goes with the first statement
            cursor.execute("SELECT 1")
        started = time.perf_counter()
        with inflight.sent("SELECT pg_sleep(%s::float8)", ["0.4"]):
            assert time.perf_counter() - started < 0.2  # not waited for
        with inflight.sent(f"INSERT INTO {probe_table} (id) VALUES (%s)", ["1"]):
            pass
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {probe_table}")
            assert cursor.fetchall() == [(1,)]
        assert rows(probe_table) == []  # not committed on its own
        raise RuntimeError("rolled back")
    assert rows(probe_table) == []


def test_in_a_transaction_not_yet_begun_it_runs_at_once_and_begins_it(probe_table: str) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        with (
            CaptureQueriesContext(connection) as captured,
            inflight.sent(f"INSERT INTO {probe_table} (id) VALUES (%s)", ["1"]),
        ):
            assert len(captured.captured_queries) == 1  # answered already
            with connection.cursor() as cursor:  # and the connection is free
                cursor.execute(f"SELECT id FROM {probe_table}")
                assert cursor.fetchall() == [(1,)]
        raise RuntimeError("rolled back")
    assert rows(probe_table) == []


def test_placeholders_and_parameters_must_agree(committed: None) -> None:
    with (
        pytest.raises(ValueError, match="2 placeholders, 1 parameters"),
        inflight.sent("SELECT %s, %s", ["1"]),
    ):
        pass
    with pytest.raises(ValueError, match="'%%'"), inflight.sent("SELECT 5 %% 2", []):
        pass


def test_djangos_query_log_sees_it(probe_table: str) -> None:
    with (
        CaptureQueriesContext(connection) as captured,
        inflight.sent(f"INSERT INTO {probe_table} (id) VALUES (%s)", ["5"]),
    ):
        pass
    assert len(captured.captured_queries) == 1
    assert f"INSERT INTO {probe_table}" in captured.captured_queries[0]["sql"]


# text as PostgreSQL stores it (no NUL, no lone surrogates)
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=60)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(note=st.none() | TEXT, detail=st.dictionaries(TEXT, st.none() | TEXT | st.integers()))
def test_parameters_arrive_as_sent(
    probe_table: str, note: str | None, detail: dict[str, Any]
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {probe_table}")
    with inflight.sent(
        f"INSERT INTO {probe_table} VALUES (%s, %s, %s::jsonb)", ["1", note, json.dumps(detail)]
    ):
        pass
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT note, detail::text FROM {probe_table}")
        got_note, got_detail = cursor.fetchone()
    assert (got_note, json.loads(got_detail)) == (note, detail)


def test_as_a_requests_first_statement_it_checks_the_kept_connection(probe_table: str) -> None:
    """As Django's cursor does: a connection the server ended since the last request is
    opened again before the statement is sent, not sent on and failed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    with superuser_connect(connection.settings_dict["NAME"]) as other:
        other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    time.sleep(0.2)  # the FATAL and the end of file arrive
    close_old_connections()  # what a server's handler does as a request starts
    with inflight.sent(f"INSERT INTO {probe_table} (id) VALUES (%s)", ["9"]):
        pass
    assert rows(probe_table) == [(9, None)]
