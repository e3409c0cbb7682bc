"""A conversation's messages through the API (api/messages.py): seq order, the cursor, what
happened to each message, its evidence, its provenance, and the access event."""

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.models import LedgerEntry
from messaging.models import Conversation, Message
from review.models import AccessEvent
from tests.api.conftest import World, api
from tests.api.test_conversations import matches_schema
from tests.imports.importing import import_chat
from tests.review.conftest import NOW, PNG, inbound, seal


def url(conversation: Conversation) -> str:
    return f"/api/v1/conversations/{conversation.pk}/messages/"


def by_wamid(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["wamid"]: m for m in body["results"]}


def test_it_lists_messages_in_seq_order(world: World, reviewer: Any) -> None:
    client = api(reviewer)
    body = client.get(url(world.hostile)).json()
    matches_schema(client, "MessagePage", body)
    seqs = [m["seq"] for m in body["results"]]
    assert seqs == sorted(seqs) and len(seqs) == 4  # the revocation belongs to its message
    assert body["cursor"] == str(seqs[-1]) and body["next"] is None


def test_it_gives_statuses_and_reactions(world: World, reviewer: Any) -> None:
    reply = by_wamid(api(reviewer).get(url(world.amelia)).json())["wamid.demo-0-r"]
    assert [s["status"] for s in reply["statuses"]] == ["sent", "delivered", "read"]
    assert reply["status"] == "read" and reply["direction"] == "out"
    assert [(r["emoji"], r["sender_wa_id"]) for r in reply["reactions"]] == [("🙏", "447700900123")]


def test_it_gives_edits_and_the_current_text(world: World, reviewer: Any) -> None:
    etienne = Conversation.objects.get(participant__wa_id="33612345678")
    edited = by_wamid(api(reviewer).get(url(etienne)).json())["wamid.demo-1-1"]
    assert edited["current_text"] == "Also, please move €40,000 into the bond fund."
    assert edited["text"].startswith("Also, I'd like to move €50,000")
    assert [e["wamid"] for e in edited["edits"]] == ["wamid.demo-edit"]


def test_a_deleted_message_keeps_its_text(world: World, reviewer: Any) -> None:
    deleted = by_wamid(api(reviewer).get(url(world.hostile)).json())["wamid.deleted"]
    assert deleted["deleted"] and deleted["text"] == "guaranteed returns, tell nobody"


def test_it_describes_an_attachment_with_its_download(world: World, reviewer: Any) -> None:
    image = world.message("wamid.image")
    found = by_wamid(api(reviewer).get(url(world.hostile)).json())["wamid.image"]
    attachment = found["attachment"]
    assert attachment["outcome"] == "stored" and attachment["mime_type"] == "image/png"
    assert attachment["sha256"] == image.attachment.file.sha256  # type: ignore[union-attr]
    assert attachment["download_url"] == f"http://testserver/api/v1/messages/{image.pk}/media/"
    download: Any = api(reviewer).get(attachment["download_url"])  # with the token
    assert download.status_code == 200 and b"".join(download.streaming_content) == PNG
    assert download["Content-Security-Policy"] == "default-src 'none'; sandbox"
    event = AccessEvent.objects.filter(action=AccessEvent.Action.DOWNLOAD_MEDIA).get()
    assert event.object_id == str(image.pk) and event.username == reviewer.username


def test_a_media_download_is_refused_without_a_role_or_a_file(
    world: World, reviewer: Any, make_user: Any
) -> None:
    image = world.message("wamid.image")
    assert api().get(f"/api/v1/messages/{image.pk}/media/").status_code == 401
    outsider = make_user("outsider")  # no role
    assert api(outsider).get(f"/api/v1/messages/{image.pk}/media/").status_code == 403
    text = world.message("wamid.deleted")  # no attachment
    missing = api(reviewer).get(f"/api/v1/messages/{text.pk}/media/")
    assert missing.status_code == 404 and missing["Content-Type"] == "application/problem+json"
    assert not AccessEvent.objects.filter(action=AccessEvent.Action.DOWNLOAD_MEDIA).exists()


def test_it_gives_the_ledger_evidence(world: World, reviewer: Any) -> None:
    for message in api(reviewer).get(url(world.amelia)).json()["results"]:
        entry = LedgerEntry.objects.get(seq=message["seq"])
        assert message["leaf_hash"] == bytes(entry.leaf_hash).hex()
        assert Message.objects.get(pk=message["id"]).entry_id == message["seq"]


def test_it_marks_captured_messages(world: World, reviewer: Any) -> None:
    message = api(reviewer).get(url(world.amelia)).json()["results"][0]
    assert (message["source"], message["imported"]) == ("captured", None)
    assert message["sender"]["name"] == "Amelia Hart"


def test_it_marks_imported_messages_with_their_export(world: World, reviewer: Any) -> None:
    import_chat(world.channel, "port-whatsapp-datadonation__file3_android_ddmmyyyy_crlf.txt")
    imported = Message.objects.filter(source="phone_export").first()
    assert imported is not None
    body = api(reviewer).get(url(imported.conversation)).json()
    matches_schema(api(reviewer), "MessagePage", body)
    first = next(m for m in body["results"] if m["id"] == imported.pk)
    assert first["source"] == "phone_export"
    assert first["imported"]["file_name"] and first["imported"]["label"].startswith("imported")


def test_reading_is_logged_as_viewing_the_conversation(world: World, auditor: Any) -> None:
    api(auditor).get(url(world.hostile), {"after": 0, "limit": 2})
    event = AccessEvent.objects.get()
    assert event.action == AccessEvent.Action.VIEW_CONVERSATION
    assert (event.object_type, event.object_id) == ("conversation", str(world.hostile.pk))
    assert event.detail == {"via": "api", "after": 0, "messages": 2}
    assert event.username == "aud"


@pytest.fixture
def long_conversation(world: World) -> Conversation:
    """Amelia writes 40 messages more: 44 in all, the last reply with its statuses."""
    contact_wa = "447700900123"
    seal(
        *[
            inbound(
                contact_wa,
                "Amelia Hart",
                {
                    "id": f"wamid.more-{n}",
                    "timestamp": str(NOW + 1000 + n),
                    "type": "text",
                    "text": {"body": f"note {n}"},
                },
            )
            for n in range(40)
        ]
    )
    return world.amelia


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(sizes=st.lists(st.integers(1, 12), min_size=1, max_size=20))
def test_any_page_sizes_read_every_message_once(
    long_conversation: Conversation, reviewer: Any, sizes: list[int]
) -> None:
    client, seen, after = api(reviewer), [], None
    for size in sizes * 50:
        query = {"limit": size} if after is None else {"limit": size, "after": after}
        body = client.get(url(long_conversation), query).json()
        seen += [m["seq"] for m in body["results"]]
        after = body["cursor"]
        if body["next"] is None:
            break
    whole = client.get(url(long_conversation), {"limit": 1000}).json()["results"]
    assert seen == [m["seq"] for m in whole] and len(seen) == 44


def test_queries_do_not_grow_with_the_page(long_conversation: Conversation, reviewer: Any) -> None:
    client = api(reviewer)
    counts = []
    for size in (2, 40):
        with CaptureQueriesContext(connection) as captured:
            assert (
                len(client.get(url(long_conversation), {"limit": size}).json()["results"]) == size
            )
        counts.append(len(captured))
    assert counts[0] == counts[1]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"after": "x"}, "after"), ({"after": "-2"}, "after"), ({"limit": "1001"}, "limit")],
)
def test_a_bad_cursor_is_a_400_naming_it(
    world: World, reviewer: Any, query: dict[str, str], field: str
) -> None:
    response = api(reviewer).get(url(world.amelia), query)
    assert response.status_code == 400 and list(response.json()["errors"]) == [field]


def test_past_the_end_is_an_empty_page_keeping_the_cursor(world: World, reviewer: Any) -> None:
    body = api(reviewer).get(url(world.amelia), {"after": 2**62}).json()
    assert body == {"results": [], "next": None, "cursor": str(2**62)}


def test_an_unknown_conversation_is_a_404(world: World, reviewer: Any) -> None:
    assert api(reviewer).get("/api/v1/conversations/999999/messages/").status_code == 404
    assert not AccessEvent.objects.exists()


def test_an_outsider_is_refused_and_nothing_is_logged(world: World, outsider: Any) -> None:
    assert api(outsider).get(url(world.amelia)).status_code == 403
    assert not AccessEvent.objects.exists()
