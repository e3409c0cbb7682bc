"""Re-sealing an unparsed item after a fix reads its bytes again with the current code."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from archive.verify import verify_ledger
from messaging.models import Channel, Delivery, Message, Reseal, UnparsedItem
from messaging.sequencer import ResealRefused, process_deliveries, reseal
from retention.models import RetentionRecord
from tests.messaging.test_poison import CHANNEL, body

pytestmark = pytest.mark.django_db


def unknown_channel_item() -> UnparsedItem:
    """A message for a channel not yet configured: unparsed until the channel exists."""
    Delivery.objects.create(body=body("wamid.late"), headers={})
    process_deliveries()
    return UnparsedItem.objects.get()


def test_it_seals_an_unknown_channels_message_once_the_channel_exists():
    item = unknown_channel_item()
    Channel.objects.create(phone_number_id=CHANNEL, name="Desk")
    done = reseal(item)
    message = Message.objects.get()
    assert (message.wamid, message.delivery_id) == ("wamid.late", item.delivery_id)
    assert (done.items, done.unparsed_again) == (1, 0)
    assert done.entry.kind == "item.resealed"
    assert RetentionRecord.objects.filter(entry_id=message.entry_id).exists()
    assert verify_ledger().intact


def test_it_refuses_a_second_reseal_of_an_item_read_in_full():
    item = unknown_channel_item()
    Channel.objects.create(phone_number_id=CHANNEL, name="Desk")
    reseal(item)
    with pytest.raises(ResealRefused, match="already"):
        reseal(item)
    assert Message.objects.count() == 1


def test_it_records_a_reseal_that_is_still_unparsed_and_allows_another():
    item = unknown_channel_item()
    first = reseal(item)  # the channel still does not exist
    assert first.unparsed_again == 1
    Channel.objects.create(phone_number_id=CHANNEL, name="Desk")
    assert reseal(item).unparsed_again == 0
    assert Reseal.objects.count() == 2


def test_it_refuses_when_the_current_code_still_cannot_seal_it():
    Channel.objects.create(phone_number_id=CHANNEL, name="Desk")
    words = " ".join(f"w{n:06d}" for n in range(170_000))
    Delivery.objects.create(body=body(text=words), headers={})
    process_deliveries()
    with pytest.raises(ResealRefused, match="ProgramLimitExceeded"):
        reseal(UnparsedItem.objects.get())
    assert not Reseal.objects.exists() and not Message.objects.exists()


def test_it_lets_an_administrator_reseal_from_the_admin(client, admin_user):
    item = unknown_channel_item()
    Channel.objects.create(phone_number_id=CHANNEL, name="Desk")
    client.force_login(admin_user)
    url = reverse("admin:messaging_unparseditem_changelist")
    page = client.post(url, {"action": "reseal", "_selected_action": [item.pk]}, follow=True)
    assert "1 items read, 0 already archived, 0 still unparsed" in page.content.decode()
    assert Reseal.objects.get().requested_by == admin_user


def test_it_offers_the_reseal_action_to_no_one_without_the_permission(client, make_user):
    item = unknown_channel_item()
    viewer = make_user("vic")
    viewer.is_staff = True
    viewer.save(update_fields=["is_staff"])
    viewer.user_permissions.add(Permission.objects.get(codename="view_unparseditem"))
    client.force_login(viewer)
    url = reverse("admin:messaging_unparseditem_changelist")
    client.post(url, {"action": "reseal", "_selected_action": [item.pk]})
    assert not Reseal.objects.exists()
