"""The change feed (/api/v1/feed/): sealed records in seq order, as each role may see them."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from access import roles
from api import events, feed
from archive.models import LedgerEntry
from messaging import simulator
from messaging.models import Channel, Conversation, Message
from retention import disposition, policies
from retention.models import RetentionPolicy
from review.models import AccessEvent
from tests.api.conftest import World, api
from tests.conftest import superuser_connect
from tests.review.conftest import NOW, inbound, seal

URL = "/api/v1/feed/"


def everything(client: Any, limit: int = 1000, **query: Any) -> list[dict[str, Any]]:
    found, after = [], None
    while True:
        page = client.get(URL, {"limit": limit, **query, **({"after": after} if after else {})})
        assert page.status_code == 200, page.content
        found += page.json()["results"]
        after = page.json()["cursor"]
        if page.json()["next"] is None:
            return found


def test_it_gives_a_reviewer_the_messages_in_seq_order_with_text_and_links(
    world: World, reviewer: Any
) -> None:
    records = everything(api(reviewer), limit=7)
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    message = world.message("wamid.xss-text")
    (found,) = [r for r in records if r["seq"] == message.entry_id]
    assert found["kind"] == "message" and found["message"] == message.pk
    assert found["conversation"] == world.hostile.pk
    assert found["conversation_url"].endswith(f"/api/v1/conversations/{world.hostile.pk}/")
    text = {c["name"]: c for c in found["contents"]}["text"]
    assert text["state"] == "present" and text["text"].startswith("<script>")
    entry = LedgerEntry.objects.get(seq=message.entry_id)
    assert found["leaf_hash"] == bytes(entry.leaf_hash).hex()
    assert found["envelope"]["seq"] == message.entry_id


def test_it_keeps_webhook_deliveries_from_a_reviewer_but_not_from_an_administrator(
    world: World, reviewer: Any, admin_user: Any
) -> None:
    assert "webhook.delivery" not in {r["kind"] for r in everything(api(reviewer))}
    kinds = {r["kind"] for r in everything(api(admin_user))}
    assert {"webhook.delivery", "message", "conversation"} <= kinds


def test_it_shows_every_role_only_the_kinds_of_its_permissions(make_user: Any) -> None:
    assert feed.readable_kinds(make_user("r", roles.REVIEWER)) == frozenset(feed.RULES[feed.READ])
    auditor = feed.readable_kinds(make_user("a", roles.AUDITOR))
    assert auditor is not None and "legal_hold.created" in auditor
    assert "retention.disposition" in auditor and "webhook.delivery" not in auditor
    legal = feed.readable_kinds(make_user("l", roles.LEGAL))
    assert legal is not None and "gdpr.erasure_request" in legal
    assert "retention.disposition" not in legal
    assert feed.readable_kinds(make_user("d", roles.ADMINISTRATOR)) is None


def test_it_refuses_an_outsider_and_a_stranger(world: World, outsider: Any) -> None:
    assert api(outsider).get(URL).status_code == 403
    assert api().get(URL).status_code in {401, 403}


@pytest.mark.parametrize(
    "query",
    [
        {"after": "x"},
        {"after": "-2"},
        {"limit": "0"},
        {"limit": "1001"},
        {"wait": "31"},
        {"wait": "-1"},
        {"wait": "1.5"},
    ],
)
def test_it_answers_a_malformed_query_with_a_400_problem(reviewer: Any, query: Any) -> None:
    answer = api(reviewer).get(URL, query)
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    assert set(answer.json()["errors"]) == set(query)


def test_it_refuses_a_nul_byte(reviewer: Any) -> None:
    assert api(reviewer).get(URL, {"after": "1\x00"}).status_code == 400


def test_it_logs_one_read_per_page_with_records_and_none_for_an_empty_one(
    world: World, reviewer: Any
) -> None:
    client = api(reviewer)
    first = client.get(URL, {"limit": 3}).json()
    (event,) = AccessEvent.objects.filter(action=AccessEvent.Action.READ_FEED)
    assert event.detail["via"] == "api" and event.detail["count"] == 3
    assert event.object_id == f"{first['results'][0]['seq']}-{first['cursor']}"
    tail = LedgerEntry.objects.order_by("-seq").first()
    assert tail is not None
    empty = client.get(URL, {"after": tail.seq})
    assert empty.json() == {"results": [], "next": None, "cursor": str(tail.seq)}
    assert AccessEvent.objects.filter(action=AccessEvent.Action.READ_FEED).count() == 1


def test_it_asks_a_constant_number_of_queries_whatever_the_page_size(
    world: World, reviewer: Any, django_assert_max_num_queries: Any
) -> None:
    client = api(reviewer)
    with django_assert_max_num_queries(12):
        assert len(client.get(URL, {"limit": 2}).json()["results"]) == 2
    with django_assert_max_num_queries(12):
        assert len(client.get(URL, {"limit": 500}).json()["results"]) > 20


def test_it_waits_for_new_records_then_answers_empty(world: World, reviewer: Any) -> None:
    tail = LedgerEntry.objects.order_by("-seq").first()
    assert tail is not None
    started = time.monotonic()
    answer = api(reviewer).get(URL, {"after": tail.seq, "wait": 1})
    assert answer.status_code == 200 and answer.json()["results"] == []
    assert 1.0 <= time.monotonic() - started < 3


def test_it_marks_a_content_deleted_by_disposition_as_disposed() -> None:
    fields = {"commit.text": "ab" * 32, "commit.wamid": "cd" * 32, "seq": 1}
    items = feed.content_items(fields, {"wamid": b"wamid.x"}, readable=True)
    assert items == [
        {"name": "text", "state": "disposed", "text": None, "base64": None},
        {"name": "wamid", "state": "present", "text": "wamid.x", "base64": None},
    ]
    withheld = feed.content_items(fields, {"wamid": b"\xff"}, readable=False)
    assert {item["state"] for item in withheld} == {"withheld"}
    assert feed.content_items(fields, {"wamid": b"\xff"}, True)[1]["base64"] == "/w=="


# --- Through a real disposition: committed rows (the superuser deletes contents) -----------


@pytest.fixture
def committed_reviewer(committed: None) -> Iterator[User]:
    user = User.objects.create_user("feed-reader", password="pw")
    user.groups.set(Group.objects.filter(name=roles.REVIEWER))
    try:
        yield user
    finally:
        with superuser_connect() as conn:  # access events are append-only: as the superuser
            conn.execute("SET session_replication_role = replica")
            conn.execute("TRUNCATE auth_user, review_accessevent RESTART IDENTITY CASCADE")


def test_it_shows_a_disposed_message_as_disposed_through_the_api(
    committed_reviewer: User, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = tmp_path
    channel = Channel.objects.create(
        name="Desk", phone_number_id=simulator.DEMO_CHANNEL["phone_number_id"]
    )
    policies.save(
        RetentionPolicy(name="Nothing", days=0, rule="none"), None, [channel], allow_zero=True
    )
    body = {"id": "wamid.gone", "timestamp": str(NOW), "type": "text", "text": {"body": "zebra"}}
    seal(inbound("447700900321", "Gone Client", body))
    seq = Message.objects.get().entry_id
    assert disposition.plan() is not None
    records = everything(api(committed_reviewer))
    (gone,) = [r for r in records if r["seq"] == seq]
    assert {c["name"]: c["state"] for c in gone["contents"]}["text"] == "disposed"
    assert "zebra" not in str(gone) and gone["conversation"] == Conversation.objects.get().pk


@examples(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(after=st.text(max_size=24), wait=st.sampled_from(["", "0", "x", "99"]))
def test_it_answers_any_after_with_a_page_or_a_400(reviewer: Any, after: str, wait: str) -> None:
    answer = api(reviewer).get(URL, {"after": after, "wait": wait})
    assert answer.status_code in {200, 400}


@given(after=st.text(max_size=48) | st.from_regex(r"\d{1,22}\.\d{1,22}", fullmatch=True))
def test_an_events_cursor_is_a_position_or_a_400(after: str) -> None:
    request = Request(APIRequestFactory().get("/", {"after": after}))
    try:
        xact, pk = events.cursor_of(request)
    except ValidationError:
        return
    assert 0 <= xact < 2**64 and 0 <= pk < 2**63
