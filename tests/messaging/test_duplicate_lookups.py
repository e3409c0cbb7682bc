"""What a batch looks up to find what is already archived: a message's wamid among messages, a
status's among statuses, so that a batch of messages reads nothing of the statuses (issue 20)."""

import json
from collections.abc import Sequence
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.models import DeliverySeal, Message, StatusEvent
from messaging.sequencer import process_deliveries

pytestmark = pytest.mark.django_db

PNID = "106540352242922"


def body(messages: Sequence[dict[str, Any]] = (), statuses: Sequence[dict[str, Any]] = ()) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
        "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "16315551234"}],
        "messages": list(messages),
        "statuses": list(statuses),
    }
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }
    return json.dumps(document).encode()


def text(wamid: str) -> dict[str, Any]:
    return {
        "from": "16315551234",
        "id": wamid,
        "timestamp": "1700000000",
        "type": "text",
        "text": {"body": "Good morning"},
    }


def status(wamid: str, name: str = "delivered", at: str = "1700000100") -> dict[str, Any]:
    return {"id": wamid, "status": name, "timestamp": at, "recipient_id": "16315551234"}


@pytest.fixture
def seal(post: Any, channels_for: Any) -> Any:
    def seal_body(raw: bytes) -> list[str]:
        channels_for(raw)
        assert post(raw).status_code == 200
        with CaptureQueriesContext(connection) as queries:
            assert process_deliveries() == 1
        return [q["sql"] for q in queries.captured_queries]

    return seal_body


def test_a_batch_of_messages_reads_nothing_of_the_statuses(seal):
    statements = seal(body(messages=[text("wamid.A"), text("wamid.B")]))
    assert Message.objects.count() == 2
    assert not [s for s in statements if "messaging_statusevent" in s]


def test_a_repeated_message_is_still_a_duplicate(seal):
    seal(body(messages=[text("wamid.A")]))
    seal(body(messages=[text("wamid.A"), text("wamid.B")]))
    assert sorted(Message.objects.values_list("wamid", flat=True)) == ["wamid.A", "wamid.B"]
    assert list(DeliverySeal.objects.order_by("pk").values_list("duplicates", flat=True)) == [0, 1]


def test_a_repeated_status_is_still_a_duplicate_in_a_later_batch(seal):
    seal(body(statuses=[status("wamid.A")]))
    seal(body(statuses=[status("wamid.A"), status("wamid.A", "read", "1700000200")]))
    assert sorted(StatusEvent.objects.values_list("status", flat=True)) == ["delivered", "read"]
    assert list(DeliverySeal.objects.order_by("pk").values_list("duplicates", flat=True)) == [0, 1]


def test_a_status_of_an_archived_message_is_no_duplicate_of_it(seal):
    """The message and its status share the wamid: one is not the other."""
    seal(body(messages=[text("wamid.A")]))
    seal(body(statuses=[status("wamid.A")]))
    assert (Message.objects.count(), StatusEvent.objects.count()) == (1, 1)
    assert sum(DeliverySeal.objects.values_list("duplicates", flat=True)) == 0


def test_a_message_and_a_status_in_one_batch_are_each_looked_up_where_they_are(seal):
    seal(body(messages=[text("wamid.A")], statuses=[status("wamid.Z")]))
    seal(body(messages=[text("wamid.A"), text("wamid.B")], statuses=[status("wamid.Z")]))
    assert (Message.objects.count(), StatusEvent.objects.count()) == (2, 1)
    assert list(DeliverySeal.objects.order_by("pk").values_list("duplicates", flat=True)) == [0, 2]


def two_channels(wamid: str) -> bytes:
    """One delivery with a message of the same wamid to each of two numbers."""
    document = json.loads(body(messages=[text(wamid)]))
    change = document["entry"][0]["changes"][0]
    other = json.loads(json.dumps(change))
    other["value"]["metadata"]["phone_number_id"] = "106540352242923"
    document["entry"][0]["changes"].append(other)
    return json.dumps(document).encode()


def test_a_wamid_is_a_duplicate_only_in_its_own_channel(seal):
    """The lookup reads (channel, wamid) pairs: the same wamid on another number is a message
    of its own, and each is a duplicate when it comes again."""
    seal(body(messages=[text("wamid.A")]))
    statements = seal(two_channels("wamid.A"))
    assert [s for s in statements if "unnest" in s and "messaging_message" in s]
    assert sorted(Message.objects.values_list("channel__phone_number_id", "wamid")) == [
        ("106540352242922", "wamid.A"),
        ("106540352242923", "wamid.A"),
    ]
    seal(two_channels("wamid.A"))
    duplicates = DeliverySeal.objects.order_by("pk").values_list("duplicates", flat=True)
    assert list(duplicates) == [0, 1, 2]
