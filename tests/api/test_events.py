"""The access and security events feed (/api/v1/events/): committed rows only, exactly once.

An event is served once no transaction older than it is running, so these tests commit their
rows (the `committed` fixture) instead of running inside a test transaction.
"""

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from access import roles
from review.models import AccessEvent
from tests.api.conftest import api
from tests.conftest import superuser_connect

URL = "/api/v1/events/"
FIELDS = {"id", "at", "action", "user", "username", "address", "object_type", "object_id", "detail"}


@pytest.fixture
def people(committed: None) -> Iterator[dict[str, User]]:
    made = {}
    for name, role in (("ada", roles.ADMINISTRATOR), ("rey", roles.REVIEWER), ("otto", None)):
        made[name] = User.objects.create_user(name, password="pw")
        if role:
            made[name].groups.set(Group.objects.filter(name=role))
    try:
        yield made
    finally:
        with superuser_connect() as conn:  # access events are append-only: as the superuser
            conn.execute("SET session_replication_role = replica")
            conn.execute("TRUNCATE auth_user, review_accessevent RESTART IDENTITY CASCADE")


def event(username: str, action: str = AccessEvent.Action.LOGIN_FAILED) -> AccessEvent:
    return AccessEvent.objects.create(username=username, action=action, address="192.0.2.7")


def follow(client: Any, after: str | None = None, limit: int = 100) -> tuple[list[Any], str]:
    found: list[Any] = []
    while True:
        page = client.get(URL, {"limit": limit, **({"after": after} if after else {})})
        assert page.status_code == 200, page.content
        found += page.json()["results"]
        after = page.json()["cursor"]
        if page.json()["next"] is None:
            return found, after or ""


def test_it_serves_events_with_stable_field_names(people: dict[str, User]) -> None:
    event("mallory")
    found, _ = follow(api(people["ada"]))
    failed = [e for e in found if e["action"] == "login_failed"]
    assert [set(e) for e in failed] == [FIELDS]
    assert failed[0]["username"] == "mallory" and failed[0]["address"] == "192.0.2.7"
    assert failed[0]["user"] is None and failed[0]["at"].endswith("Z")


def test_it_is_for_administrators_only(people: dict[str, User]) -> None:
    assert api(people["rey"]).get(URL).status_code == 403
    assert api(people["otto"]).get(URL).status_code == 403
    assert api().get(URL).status_code in {401, 403}


@pytest.mark.parametrize("after", ["x", "1", "1.", ".1", "1.2.3", "99999999999999999999999.1"])
def test_it_refuses_a_cursor_it_did_not_make(people: dict[str, User], after: str) -> None:
    answer = api(people["ada"]).get(URL, {"after": after})
    assert answer.status_code == 400 and "after" in answer.json()["errors"]


def test_it_pages_every_event_once_in_any_page_size(people: dict[str, User]) -> None:
    made = {event(f"user{n}").pk for n in range(7)}
    client = api(people["ada"])
    one_by_one, cursor = follow(client, limit=1)
    ids = [e["id"] for e in one_by_one if e["action"] == "login_failed"]
    assert sorted(ids) == sorted(made) and len(set(ids)) == len(ids)
    event("later")
    more, _ = follow(client, cursor, limit=3)
    assert [e["username"] for e in more if e["action"] == "login_failed"] == ["later"]


def test_it_serves_an_event_committed_late_with_a_smaller_id(people: dict[str, User]) -> None:
    client = api(people["ada"])
    _, cursor = follow(client)
    params = connection.get_connection_params()
    with psycopg.connect(**params) as slow:  # a second connection: a transaction left open
        slow.execute(
            "INSERT INTO review_accessevent (username, action, address, object_type, object_id,"
            " detail, at) VALUES ('slow', 'login_failed', NULL, '', '', '{}', now())"
        )
        fast = event("fast")  # committed, with a larger id than the open one's
        first, cursor = follow(client, cursor)
        assert "fast" not in {e["username"] for e in first}  # held back while 'slow' is open
        slow.commit()
    second, cursor = follow(client, cursor)
    names = [e["username"] for e in first + second if e["action"] == "login_failed"]
    assert names == ["slow", "fast"]
    slow_id = next(e["id"] for e in second if e["username"] == "slow")
    assert slow_id < fast.pk


def test_it_logs_a_read_but_not_a_read_of_its_own_reads(people: dict[str, User]) -> None:
    event("mallory")
    client = api(people["ada"])
    _, cursor = follow(client)
    reads = AccessEvent.objects.filter(action=AccessEvent.Action.READ_EVENTS)
    assert reads.count() == 1 and reads.get().detail["via"] == "api"
    again, _ = follow(client, cursor)
    assert [e["action"] for e in again] == ["read_events"]
    assert reads.count() == 1


def test_it_long_polls_until_an_event_commits(people: dict[str, User]) -> None:
    client = api(people["ada"])
    _, cursor = follow(client)  # nothing but the fixture's own reads from here on
    _, cursor = follow(client, cursor)
    later = threading.Timer(0.3, lambda: (event("late"), connection.close()))
    started = time.monotonic()
    later.start()
    answer = client.get(URL, {"after": cursor, "wait": 5}).json()
    later.join()
    assert [e["username"] for e in answer["results"]] == ["late"]
    assert time.monotonic() - started < 3
