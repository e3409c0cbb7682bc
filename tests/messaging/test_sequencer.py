"""Every real webhook body, replayed through the signed endpoint, becomes the right records."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.verify import verify_ledger
from messaging.models import (
    AccountEvent,
    Conversation,
    Delivery,
    DeliverySeal,
    Message,
    Participant,
    ParticipantProfile,
    StatusEvent,
    UnparsedItem,
)
from messaging.sequencer import process_deliveries
from tests.messaging.conftest import FIXTURES, fixture_bytes

pytestmark = pytest.mark.django_db
ALL = sorted(p.name for p in FIXTURES.glob("*.json"))


def items_in(body: bytes, key: str) -> list[dict]:
    found = []
    for entry in json.loads(body)["entry"]:
        for change in entry["changes"]:
            value = change["value"]
            found += value.get(key, [])
            for chunk in value.get("history", []):
                for thread in chunk.get("threads", []):
                    found += thread.get("messages", []) if key == "messages" else []
    return found


def replay(post, channels_for, name):
    body = fixture_bytes(name)
    channels_for(body)
    assert post(body).status_code == 200
    assert process_deliveries() == 1
    return body


def test_it_replays_every_fixture_in_the_folder():
    assert len(ALL) == 44  # a fixture added to the folder must be added here consciously


@pytest.mark.parametrize("name", ALL)
def test_it_archives_every_item_of_a_real_body(post, channels_for, name):
    body = replay(post, channels_for, name)
    messages = items_in(body, "messages") + items_in(body, "message_echoes")
    statuses = items_in(body, "statuses")
    assert sorted(Message.objects.values_list("wamid", flat=True)) == sorted(
        {m["id"] for m in messages}
    )
    assert StatusEvent.objects.count() == len(statuses)
    assert UnparsedItem.objects.count() == 0
    seal = DeliverySeal.objects.get()
    assert seal.items == len(messages) + len(statuses) + AccountEvent.objects.count()
    assert verify_ledger().intact


def test_it_seals_the_raw_body_as_committed_content(post, channels_for):
    body = replay(post, channels_for, "message-text-forwarded__netflie-php.json")
    seal = DeliverySeal.objects.get()
    assert bytes(seal.entry.contents.get(name="body").content) == body
    assert b"PHONE_NUMBER" not in bytes(seal.entry.envelope)


def test_it_keeps_personal_data_out_of_every_envelope(post, channels_for):
    replay(post, channels_for, "message-edit-user-edited-image-bsuid__meta-docs-via-vaam-rs.json")
    for message in Message.objects.all():
        envelope = bytes(message.entry.envelope)
        assert message.wamid.encode() not in envelope
        assert b"16505551234" not in envelope and b"Pablo" not in envelope


def test_it_reads_a_text_message(post, channels_for):
    replay(post, channels_for, "message-text-group__meta-docs-via-vaam-rs.json")
    message = Message.objects.get()
    assert (message.direction, message.type, message.text) == ("in", "text", "Hello group")
    assert message.conversation.key.startswith("group:")
    assert message.sender.wa_id == "16505551234"
    assert message.sent_at.timestamp() == 1750101000


def test_it_links_an_edit_to_its_original(post, channels_for):
    replay(post, channels_for, "message-edit-user-edited-image-bsuid__meta-docs-via-vaam-rs.json")
    edit = Message.objects.get()
    assert edit.type == "edit"
    assert edit.target_wamid == "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="
    assert edit.text == "Updated image caption"
    assert ParticipantProfile.objects.get().username == "pablomorales"


def test_it_keeps_a_removed_reaction_as_its_own_record(post, channels_for):
    replay(post, channels_for, "message-reaction-removed__netflie-php.json")
    reaction = Message.objects.get()
    assert (reaction.type, reaction.target_wamid, reaction.text) == ("reaction", "MESSAGE_ID", "")


def test_it_archives_business_app_echoes_as_outbound(post, channels_for):
    replay(post, channels_for, "smb-message-echoes-text__meta-docs.json")
    echo = Message.objects.get()
    assert (echo.direction, echo.source, echo.sender) == ("out", "smb_message_echoes", None)
    assert echo.conversation.participant.wa_id == "16505551234"


def test_it_archives_history_threads_in_both_directions(post, channels_for):
    replay(post, channels_for, "history-sync-threads-coexistence__meta-docs-via-vaam-rs.json")
    directions = set(Message.objects.values_list("direction", flat=True))
    assert directions == {"in", "out"}
    assert Conversation.objects.count() == 2


def test_it_identifies_a_client_by_business_scoped_id_alone(post, channels_for):
    replay(post, channels_for, "message-text-bsuid-only-no-from__netflie-php.json")
    assert Participant.objects.get().key == "bsuid:BSUID_123"


def test_it_keeps_failed_statuses_with_their_errors(post, channels_for):
    replay(post, channels_for, "status-failed-131049-ecosystem__meta-docs.json")
    status = StatusEvent.objects.get()
    assert status.status == "failed"
    assert status.payload["errors"][0]["code"] == 131049


def test_it_counts_a_repeated_delivery_instead_of_storing_it_twice(post, channels_for):
    body = replay(post, channels_for, "message-reaction__meta-docs.json")
    post(body)
    process_deliveries()
    assert Message.objects.count() == 1
    assert list(DeliverySeal.objects.values_list("duplicates", flat=True).order_by("pk")) == [0, 1]


def test_it_counts_a_repeat_inside_one_batch(post, channels_for):
    """The netflie batch fixture carries the same wamid in both of its changes."""
    replay(post, channels_for, "batch-two-changes-two-texts__netflie-php.json")
    assert Message.objects.count() == 1
    assert DeliverySeal.objects.get().duplicates == 1


def test_it_appends_statuses_arriving_out_of_order(post, channels_for):
    for name in (
        "status-read-conversation-user-initiated__netflie-php.json",
        "status-sent-conversation__netflie-php.json",
    ):
        replay(post, channels_for, name)
    assert StatusEvent.objects.count() == 2


def test_it_keeps_items_of_an_unknown_channel_for_attention(post):
    post(fixture_bytes("message-text-group__meta-docs-via-vaam-rs.json"))
    process_deliveries()
    unparsed = UnparsedItem.objects.get()
    assert "unknown channel" in unparsed.reason
    assert b"Hello group" in bytes(unparsed.raw)


def test_it_seals_invalid_json_as_one_unparsed_item(post):
    post(b"{not json")
    process_deliveries()
    assert bytes(UnparsedItem.objects.get().raw) == b"{not json"
    assert DeliverySeal.objects.get().unparsed == 1


def test_it_keeps_one_bad_item_from_blocking_the_others(post, channels_for):
    body = json.loads(fixture_bytes("batch-two-changes-two-texts__netflie-php.json"))
    body["entry"][0]["changes"][0]["value"]["messages"].insert(0, {"type": "text"})
    raw = json.dumps(body).encode()
    channels_for(raw)
    post(raw)
    process_deliveries()
    assert Message.objects.count() == 1
    assert UnparsedItem.objects.get().reason == "message without an id"


def test_it_seals_deliveries_in_arrival_order(post, channels_for):
    for name in ALL[:5]:
        channels_for(fixture_bytes(name))
        post(fixture_bytes(name))
    process_deliveries()
    seals = DeliverySeal.objects.order_by("delivery_id")
    assert [s.entry_id for s in seals] == sorted(s.entry_id for s in seals)


def test_it_does_nothing_the_second_time(post, channels_for):
    replay(post, channels_for, "message-image__netflie-php.json")
    assert process_deliveries() == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "entry",
                    "changes",
                    "value",
                    "messages",
                    "statuses",
                    "id",
                    "field",
                    "metadata",
                    "type",
                    "from",
                    "contacts",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=json_values)
def test_it_stores_and_seals_any_json_without_an_exception(post, document):
    before = Delivery.objects.count()
    assert post(json.dumps(document).encode()).status_code == 200
    process_deliveries()
    assert Delivery.objects.count() == before + 1
    assert not Delivery.objects.filter(seal__isnull=True).exists()


def test_it_reads_escaped_and_raw_unicode_alike(post, channels_for):
    template = fixture_bytes("message-text-group__meta-docs-via-vaam-rs.json")
    escaped = template.replace(b"Hello group", b"Gr\\u00fc\\u00dfe \\ud83d\\ude00")
    raw = template.replace(b"Hello group", "Grüße 😀".encode()).replace(b"AAdOTY", b"AAdOTZ")
    raw = raw.replace(b"MUMxMAA=", b"MUMxMAB=")
    channels_for(template)
    post(escaped)
    post(raw)
    process_deliveries()
    assert list(Message.objects.values_list("text", flat=True)) == ["Grüße 😀", "Grüße 😀"]
