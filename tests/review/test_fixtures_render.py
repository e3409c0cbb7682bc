"""Every real webhook fixture, sealed and then read: no message is ever missing from its
transcript, whatever its type, and no page fails."""

import json
from pathlib import Path
from typing import Any

from django.urls import reverse

from messaging.models import Channel, Conversation, Delivery, Message
from messaging.sequencer import process_deliveries
from messaging.summaries import ANNOTATION_TYPES

FIXTURES = Path(__file__).parents[1] / "messaging" / "fixtures"


def test_it_shows_every_message_of_every_fixture(client: Any, reviewer: Any, db: None) -> None:
    # Fixtures from different sources reuse wamids: each gets its own channel, so that every
    # message in them is archived rather than counted as a duplicate.
    for number, path in enumerate(sorted(FIXTURES.glob("*.json"))):
        document = json.loads(path.read_bytes())
        for entry in document["entry"]:
            for change in entry["changes"]:
                metadata = change["value"].setdefault("metadata", {})
                metadata["phone_number_id"] = f"fixture-{number}"
        Channel.objects.create(phone_number_id=f"fixture-{number}", name=path.stem)
        Delivery.objects.create(body=json.dumps(document).encode(), headers={})
    process_deliveries()
    client.force_login(reviewer)
    shown = 0
    for conversation in Conversation.objects.all():
        response = client.get(reverse("review:conversation", args=[conversation.pk]))
        assert response.status_code == 200
        html = response.content.decode()
        for message in Message.objects.filter(conversation=conversation).exclude(
            type__in=ANNOTATION_TYPES
        ):
            assert f'id="m{message.pk}"' in html, (message.type, message.wamid)
            shown += 1
    visible = Message.objects.exclude(type__in=ANNOTATION_TYPES).count()
    assert shown == visible >= 25, (shown, visible, Message.objects.count())
    assert client.get(reverse("review:conversations")).status_code == 200
