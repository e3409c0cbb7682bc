"""After disposition the portal still reads: a disposed message says what happened to it."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from access.roles import REVIEWER
from messaging import simulator
from messaging.models import Channel, Conversation, Message
from retention import disposition, policies
from retention.models import RetentionPolicy
from tests.conftest import superuser_connect
from tests.review.conftest import NOW, inbound, seal

MARKER = "quarterly-zebra-7731"


@pytest.fixture
def reader(committed: None) -> Iterator[Client]:
    user = User.objects.create_user("disposal-reader", password="pw")
    user.groups.set(Group.objects.filter(name=REVIEWER))
    client = Client()
    client.force_login(user)
    try:
        yield client
    finally:
        with superuser_connect() as conn:  # access events are append-only: as the superuser
            conn.execute("SET session_replication_role = replica")
            conn.execute("TRUNCATE auth_user RESTART IDENTITY CASCADE")


def test_a_disposed_message_is_shown_as_disposed_not_as_an_empty_bubble(
    reader: Client, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = tmp_path
    channel = Channel.objects.create(
        name="Desk", phone_number_id=simulator.DEMO_CHANNEL["phone_number_id"]
    )
    policies.save(
        RetentionPolicy(name="Nothing", days=0, rule="none"), None, [channel], allow_zero=True
    )
    message = {"id": "wamid.gone", "timestamp": str(NOW), "type": "text", "text": {"body": MARKER}}
    seal(inbound("447700900321", "Gone Client", message))
    conversation = Conversation.objects.get()
    assert disposition.plan() is not None
    gone = Message.objects.get(conversation=conversation)
    assert gone.text == "" and gone.wamid.startswith("disposed:")

    page = reader.get(reverse("review:conversation", args=[conversation.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Content disposed of at the end of its retention period" in html
    assert MARKER not in html and "447700900321" not in html
    assert reader.get(reverse("review:conversations")).status_code == 200
    found = reader.get(reverse("review:search"), {"q": MARKER})
    assert found.status_code == 200 and MARKER not in found.content.decode().split("</form>")[-1]
