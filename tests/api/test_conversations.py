"""The conversations API (api/conversations.py): the portal's list, its filters and cursor, and
one conversation's participants and counts, for every role and nobody else."""

from functools import cache
from typing import Any

import jsonschema
import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging.models import Channel
from review import flags, tags
from review.models import AccessEvent, Tag
from tests.api.conftest import World, api

LIST = "/api/v1/conversations/"


@cache
def _schema(client: Any) -> dict[str, Any]:
    return dict(client.get("/api/schema/", HTTP_ACCEPT="application/json").json())


def matches_schema(client: Any, component: str, body: Any) -> None:
    """`body` is what the OpenAPI schema says `component` is (what schemathesis checks)."""
    schema = _schema(client)
    jsonschema.validate(
        body, {"$ref": f"#/components/schemas/{component}", "components": schema["components"]}
    )


def test_it_lists_conversations_most_recent_first(world: World, reviewer: Any) -> None:
    client = api(reviewer)
    body = client.get(LIST).json()
    matches_schema(client, "ConversationPage", body)
    assert body["results"][0]["id"] == world.hostile.pk
    assert body["next"] is None and len(body["results"]) == 4


def test_it_shows_a_row_as_the_portal_does(world: World, auditor: Any) -> None:
    row = next(r for r in api(auditor).get(LIST).json()["results"] if r["id"] == world.amelia.pk)
    assert row["title"] == "Amelia Hart"
    assert row["participant"]["wa_id"] == "447700900123"
    assert row["channel"]["phone_number_id"] == world.channel.phone_number_id
    assert row["message_count"] == 4 and row["inbound_count"] == 3


def test_it_pages_with_the_portals_cursor(world: World, legal: Any) -> None:
    client = api(legal)
    first = client.get(LIST, {"limit": 3}).json()
    assert len(first["results"]) == 3 and first["next"]
    second = client.get(first["next"]).json()
    seen = [r["id"] for r in first["results"] + second["results"]]
    assert seen == [r["id"] for r in client.get(LIST).json()["results"]]
    assert second["next"] is None


def test_it_gives_the_same_rows_as_the_portal_page(world: World, reviewer: Any) -> None:
    browser = Client()
    browser.force_login(reviewer)
    for query in ({}, {"sort": "oldest"}, {"who": "amelia"}, {"channel": world.channel.pk}):
        page = browser.get("/conversations/", query)
        expected = [row.conversation_id for row in page.context["rows"]]
        assert [r["id"] for r in api(reviewer).get(LIST, query).json()["results"]] == expected


def test_it_filters_by_tag_and_open_flag(world: World, reviewer: Any) -> None:
    tag = Tag.objects.get()
    tags.set_tag(world.amelia, tag, reviewer, applied=True)
    flags.raise_flag(reviewer, world.hostile, None, "look at this")
    tagged = api(reviewer).get(LIST, {"tag": tag.pk}).json()["results"]
    assert [r["id"] for r in tagged] == [world.amelia.pk]
    assert tagged[0]["tags"] == [{"id": tag.pk, "name": tag.name}]
    flagged = api(reviewer).get(LIST, {"flagged": "open"}).json()["results"]
    assert [(r["id"], r["open_flags"]) for r in flagged] == [(world.hostile.pk, 1)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"channel": "x"}, "channel"),
        ({"tag": "1.5"}, "tag"),
        ({"who": "x" * 101}, "who"),
        ({"flagged": "yes"}, "flagged"),
        ({"sort": "sideways"}, "sort"),
        ({"after": "yesterday"}, "after"),
        ({"after": "2026-02-30T00:00:00|3"}, "after"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(
    world: World, reviewer: Any, query: dict[str, str], field: str
) -> None:
    response = api(reviewer).get(LIST, query)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


def test_a_nul_byte_is_a_400(world: World, reviewer: Any) -> None:
    assert api(reviewer).get(LIST, {"who": "a\x00b"}).status_code == 400


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(["channel", "who", "tag", "flagged", "sort", "after", "limit"]),
    value=st.text(max_size=30),
)
def test_no_filter_value_is_a_server_error(
    world: World, reviewer: Any, name: str, value: str
) -> None:
    assert api(reviewer).get(LIST, {name: value}).status_code in (200, 400)


def test_the_detail_has_participants_and_counts(world: World, reviewer: Any) -> None:
    client = api(reviewer)
    body = client.get(f"{LIST}{world.amelia.pk}/").json()
    matches_schema(client, "ConversationDetail", body)
    assert [p["name"] for p in body["participants"]] == ["Amelia Hart"]
    assert (body["message_count"], body["flags"]) == (4, 0)
    assert body["messages_url"].endswith(f"/api/v1/conversations/{world.amelia.pk}/messages/")


def test_neither_list_nor_detail_is_an_access_event(world: World, reviewer: Any) -> None:
    client = api(reviewer)
    client.get(LIST)
    client.get(f"{LIST}{world.amelia.pk}/")
    assert not AccessEvent.objects.exists()  # as the portal's list: no message is shown


@pytest.mark.parametrize("pk", ["999999", "99999999999999999999"])
def test_an_unknown_conversation_is_a_404(world: World, reviewer: Any, pk: str) -> None:
    assert api(reviewer).get(f"{LIST}{pk}/").status_code == 404


def test_an_outsider_is_refused(world: World, outsider: Any) -> None:
    client = api(outsider)
    assert client.get(LIST).status_code == 403
    assert client.get(f"{LIST}{world.amelia.pk}/").status_code == 403


def test_nobody_is_refused_without_credentials(world: World) -> None:
    assert api().get(LIST).status_code == 401


def test_a_channel_with_no_conversations_lists_none(world: World, reviewer: Any) -> None:
    other = Channel.objects.create(name="Empty", phone_number_id="1")
    body = api(reviewer).get(LIST, {"channel": other.pk}).json()
    assert body == {"results": [], "next": None, "cursor": None}
