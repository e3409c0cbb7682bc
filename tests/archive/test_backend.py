"""archive.backend: a kept connection is checked before a request uses it without a statement
sent, and one the server has ended is given up and opened again, so the request after a
server's restart or a terminated session is served, not failed."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import close_old_connections, connection, connections, transaction
from django.urls import reverse

from access import roles
from tests.conftest import superuser_connect


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def last_statement(pid: int) -> str:
    """What the session `pid` last sent, as another session sees it."""
    with superuser_connect(connection.settings_dict["NAME"]) as other:
        row = other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return str(row[0]) if row else ""


def terminate(pid: int) -> None:
    with superuser_connect(connection.settings_dict["NAME"]) as other:
        other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])


def test_the_engine_is_ours() -> None:
    assert type(connections["default"]).__module__ == "archive.backend.base"


def test_a_healthy_connection_is_usable_without_a_statement(committed: None) -> None:
    pid = backend_pid()
    assert "pg_backend_pid" in last_statement(pid)
    assert connection.is_usable()
    assert "pg_backend_pid" in last_statement(pid)  # no SELECT 1 sent


def test_a_session_the_server_ended_is_not_usable(committed: None) -> None:
    pid = backend_pid()
    terminate(pid)
    deadline = time.monotonic() + 5
    while connection.is_usable():  # the FATAL and the end of file are on their way
        assert time.monotonic() < deadline, "the ended session still looks usable"
        time.sleep(0.01)
    connection.close()
    assert backend_pid() != pid


def test_a_failed_transaction_is_not_usable(committed: None) -> None:
    with transaction.atomic():
        raw = connection.connection
        with pytest.raises(Exception, match="division by zero"):
            raw.execute("SELECT 1 / 0")
        assert not connection.is_usable()
        raw.rollback()
    assert connection.is_usable()


@pytest.fixture
def reviewer_committed(committed: None) -> Iterator[User]:
    """A reviewer whose rows are committed (this test's connection is ended under it), removed
    afterwards with what its requests wrote."""
    user = User.objects.create_user("rey-committed", password="pw")
    user.groups.set(Group.objects.filter(name=roles.REVIEWER))
    try:
        yield user
    finally:
        with superuser_connect(connection.settings_dict["NAME"]) as conn:
            conn.execute("SET session_replication_role = replica")  # access events: append-only
            conn.execute("DELETE FROM review_accessevent WHERE user_id = %s", [user.pk])
            conn.execute("DELETE FROM django_session")
            conn.execute("DELETE FROM auth_user_groups WHERE user_id = %s", [user.pk])
            conn.execute("DELETE FROM auth_user WHERE id = %s", [user.pk])


def test_the_request_after_its_session_was_ended_is_served(
    client: Any, reviewer_committed: User
) -> None:
    """As after a database restart: the kept connection fails the check at the next request's
    first statement and a new one is opened; without the check, that request would fail.
    (The test client leaves out what a server's handler does when a request starts, Django's
    close_old_connections, which asks for the check: it is called here as the handler would.)"""
    client.force_login(reviewer_committed)
    close_old_connections()
    assert client.get(reverse("review:conversations")).status_code == 200
    pid = backend_pid()
    terminate(pid)
    time.sleep(0.2)  # the FATAL and the end of file arrive
    close_old_connections()
    assert client.get(reverse("review:conversations")).status_code == 200
    assert backend_pid() != pid
