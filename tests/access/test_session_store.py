"""access.session_store reads a session with its own statement; whatever is stored, it loads
what Django's database store loads, and forgets a key Django's forgets. It reads the user the
session named last time with it, the same user, fresh, and never another request's."""

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.core.signals import request_started
from django.db import close_old_connections, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from access import roles, session_store
from access.backends import ModelBackend
from access.roles import roles_of
from access.session_store import SessionStore
from archive import prepared

LEAVE = {"to": "https://example.org/"}


def test_it_is_the_portals_session_engine() -> None:
    assert settings.SESSION_ENGINE == "access.session_store"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "case", ["live", "expired", "unknown", "tampered", "empty key", "no user's id"]
)
def test_it_loads_what_djangos_database_store_loads(case: str) -> None:
    stored = db.SessionStore()
    stored["_auth_user_id"] = "not a number" if case == "no user's id" else "7"
    stored["note"] = "a “quoted” ünïcode value"
    stored.create()
    key = stored.session_key
    if case == "expired":
        Session.objects.filter(session_key=key).update(
            expire_date=timezone.now() - timedelta(seconds=1)
        )
    if case == "unknown":
        key = "x" * 32
    if case == "tampered":
        Session.objects.filter(session_key=key).update(session_data="not:signed:data")
    if case == "empty key":
        key = None
    ours, django = SessionStore(key), db.SessionStore(key)
    assert ours.load() == django.load()
    assert ours.session_key == django.session_key
    if case in ("live", "no user's id"):
        assert ours.load()["note"] == "a “quoted” ünïcode value"
    else:
        assert ours.load() == {}


# --------------------------------------------------------------------------- the session's user


def reads_of_the_user(queries: Any) -> list[str]:
    sent = [prepared.statement(q["sql"]) for q in queries.captured_queries]
    return [sql for sql in sent if "auth_user" in sql]


def next_request() -> None:
    """request_started, as a request's start sends it (less the closing of the database's
    connection, which the test's transaction holds: Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    try:
        request_started.send(sender=None)
    finally:
        request_started.connect(close_old_connections)


@pytest.mark.django_db
def test_a_signed_in_request_reads_its_session_and_user_in_one_statement(
    reviewer: User, client: Client
) -> None:
    client.force_login(reviewer)  # saved by this process: the session's user is known
    assert client.get(reverse("review:leave"), LEAVE).status_code == 200  # permissions' names
    with CaptureQueriesContext(connection) as together:
        assert client.get(reverse("review:leave"), LEAVE).status_code == 200
    session_store._user_of.clear()  # as a process that has not seen the session yet
    with CaptureQueriesContext(connection) as apart:
        assert client.get(reverse("review:leave"), LEAVE).status_code == 200
    with CaptureQueriesContext(connection) as learned:  # the last request taught it
        assert client.get(reverse("review:leave"), LEAVE).status_code == 200
    assert len(together) == len(apart) - 1 == len(learned)
    for queries in (together, learned):
        (read,) = reads_of_the_user(queries)
        assert "django_session" in read
    reads = reads_of_the_user(apart)
    assert len(reads) == 1 and "django_session" not in reads[0]
    assert [q for q in apart.captured_queries if "django_session" in prepared.statement(q["sql"])]


@pytest.mark.django_db
@pytest.mark.parametrize("role", roles.ROLES)
def test_the_user_read_with_the_session_is_the_user_read_alone(role: str, make_user: Any) -> None:
    user = make_user(f"both-{role}", role)
    user.user_permissions.add(Permission.objects.get(codename="create_export"))
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store.create()
    roles_of(User.objects.get(pk=user.pk))  # the process's permission names read
    next_request()
    alone = ModelBackend().get_user(user.pk)
    with CaptureQueriesContext(connection) as queries:
        assert SessionStore(store.session_key).load()[SESSION_KEY] == str(user.pk)
        read = ModelBackend().get_user(user.pk)
        assert roles_of(read) == roles_of(alone) == [role]
        assert read.get_all_permissions() == alone.get_all_permissions()
    assert len(queries) == 1
    fields = [field.attname for field in User._meta.concrete_fields]
    assert [getattr(read, f) for f in fields] == [getattr(alone, f) for f in fields]
    assert read.get_session_auth_hash() == alone.get_session_auth_hash()
    with CaptureQueriesContext(connection) as again:  # taken once: read again after that
        assert ModelBackend().get_user(user.pk) == read
    assert len(again) == 1


@pytest.mark.django_db
def test_a_session_that_names_another_user_than_remembered_is_its_own_users(
    reviewer: User, auditor: User, client: Client
) -> None:
    client.force_login(reviewer)
    session_store._user_of[hash(client.session.session_key)] = auditor.pk
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("review:leave"), LEAVE)
    assert response.status_code == 200
    assert response.wsgi_request.user.pk == reviewer.pk
    assert len(reads_of_the_user(queries)) == 2  # the guess, then the session's own user
    assert session_store._user_of[hash(client.session.session_key)] == reviewer.pk


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["deactivated", "deleted", "role taken away"])
def test_the_user_read_with_the_session_is_read_fresh(
    change: str, reviewer: User, client: Client
) -> None:
    client.force_login(reviewer)
    assert client.get(reverse("review:leave"), LEAVE).status_code == 200
    if change == "deactivated":
        User.objects.filter(pk=reviewer.pk).update(is_active=False)
    elif change == "deleted":
        reviewer.delete()
    else:
        reviewer.groups.clear()
    response = client.get(reverse("review:leave"), LEAVE)
    assert response.status_code == (403 if change == "role taken away" else 302)


@pytest.mark.django_db
def test_no_request_takes_a_user_read_with_an_earlier_requests_session(reviewer: User) -> None:
    store = SessionStore()
    store[SESSION_KEY] = str(reviewer.pk)
    store.create()
    SessionStore(store.session_key).load()  # read with the user, who is active
    User.objects.filter(pk=reviewer.pk).update(is_active=False)
    next_request()  # the next request
    assert ModelBackend().get_user(reviewer.pk) is None  # read again: inactive


def test_it_remembers_at_most_so_many_sessions() -> None:
    """Its guesses are bounded: when full, it starts again (a guess missing costs one statement)."""
    session_store._user_of.clear()
    try:
        for n in range(session_store._REMEMBERED):
            session_store._remember(f"key-{n}", {SESSION_KEY: str(n + 1)})
        assert len(session_store._user_of) == session_store._REMEMBERED
        session_store._remember("one more", {SESSION_KEY: "7"})
        assert session_store._user_of == {hash("one more"): 7}
    finally:
        session_store._user_of.clear()
