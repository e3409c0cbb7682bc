import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from messaging.models import Channel, Message
from tests.messaging.conftest import fixture_bytes

pytestmark = pytest.mark.django_db


def test_it_adds_a_channel_and_updates_it_when_run_again(tmp_path, capsys):
    token = tmp_path / "token"
    token.write_text("EAAG-secret\n")
    call_command("add_channel", "--name", "Desk", "--phone-number-id", "106", "--token-file", token)
    call_command("add_channel", "--name", "Wealth desk", "--phone-number-id", "106")
    channel = Channel.objects.get()
    assert (channel.name, channel.access_token) == ("Wealth desk", "EAAG-secret")
    assert "EAAG" not in capsys.readouterr().out


def test_it_names_an_unreadable_token_file(tmp_path):
    with pytest.raises(CommandError, match="token file"):
        call_command(
            "add_channel", "--name", "D", "--phone-number-id", "1", "--token-file", tmp_path / "x"
        )


def test_it_seals_pending_deliveries_from_the_command_line(post, channels_for, capsys):
    body = fixture_bytes("message-image__netflie-php.json")
    channels_for(body)
    post(body)
    call_command("process_deliveries")
    assert "Sealed 1 delivery." in capsys.readouterr().out
    assert Message.objects.count() == 1


def test_it_hides_the_channel_token_in_the_admin(client, admin_user):
    channel = Channel.objects.create(name="Desk", phone_number_id="7", access_token="EAAG-secret")
    client.force_login(admin_user)
    response = client.get(f"/admin/messaging/channel/{channel.pk}/change/")
    assert response.status_code == 200
    assert "EAAG-secret" not in response.content.decode()


def test_it_keeps_the_token_when_the_admin_leaves_it_empty(client, admin_user):
    channel = Channel.objects.create(name="Desk", phone_number_id="7", access_token="EAAG-secret")
    client.force_login(admin_user)
    client.post(
        f"/admin/messaging/channel/{channel.pk}/change/",
        {"name": "Desk 2", "phone_number_id": "7", "access_token": "", "active": "on"},
    )
    channel.refresh_from_db()
    assert (channel.name, channel.access_token) == ("Desk 2", "EAAG-secret")
