"""Configuring routes: `manage.py add_route` and the admin's route form share one set of rules."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from bridge.admin import RouteForm
from bridge.models import Route
from tests.bridge.conftest import PNID, text_body

SLACK = "https://hooks.slack.com/services/T000/B000/secret"
TEAMS = "https://bank.webhook.office.com/webhookb2/abc/IncomingWebhook/def/ghi"


def add_route(*args: str) -> str:
    out = StringIO()
    call_command("add_route", "--channel", PNID, *args, stdout=out)
    return out.getvalue()


def test_add_route_creates_then_updates_the_channels_route(channel, make_user):
    manager = make_user("rm")
    manager.email = "rm@bank.example"
    manager.save()
    said = add_route(
        "--email",
        "desk@bank.example",
        "--email",
        "ops@bank.example",
        "--user",
        "rm",
        "--slack-url",
        SLACK,
        "--teams-url",
        TEAMS,
        "--journal",
        "journal@archive.bank.example",
        "--metadata-only",
        "--name",
        "Wealth desk",
    )
    route = Route.objects.get()
    assert said.startswith(f"Created route {route.pk} for Wealth desk")
    assert "3 email recipient(s)" in said and "journal journal@archive.bank.example" in said
    assert SLACK not in said  # the webhook's secret is never printed
    assert route.email_recipients == ["desk@bank.example", "ops@bank.example"]
    assert list(route.users.all()) == [manager]
    assert (route.slack_url, route.teams_url) == (SLACK, TEAMS)
    assert route.metadata_only and route.active and route.conversation is None

    said = add_route("--email", "new@bank.example", "--inactive")
    route.refresh_from_db()
    assert said.startswith("Updated route")
    assert Route.objects.count() == 1
    assert route.email_recipients == ["new@bank.example"]
    assert route.slack_url == "" and route.journal_address == "" and not route.active
    assert list(route.users.all()) == []


def test_a_conversation_gets_its_own_route(channel, capture):
    conversation = capture(text_body("Hello", wamid="wamid.CMD1"))
    add_route("--email", "desk@bank.example")
    add_route("--conversation", str(conversation.pk), "--email", "rm@bank.example")
    own = Route.objects.get(conversation=conversation)
    assert own.email_recipients == ["rm@bank.example"]
    assert Route.objects.filter(conversation__isnull=True).count() == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--email", "not-an-address"], "'not-an-address' is not an email address"),
        (["--journal", "journal@"], "is not an email address"),
        (["--slack-url", "https://evil.example/hook"], "allowed host"),
        (["--teams-url", "http://bank.webhook.office.com/x"], "allowed host"),
        (["--user", "nobody"], "no user 'nobody'"),
        (["--conversation", "999999"], "no conversation 999999 on this channel"),
    ],
)
def test_add_route_refuses_what_cannot_work(channel, args, says):
    with pytest.raises(CommandError, match=says):
        add_route(*args)
    assert not Route.objects.exists()


def test_add_route_needs_a_known_channel(db):
    with pytest.raises(CommandError, match="no channel with phone_number_id"):
        call_command("add_route", "--channel", "000", "--email", "a@bank.example")


def test_a_user_without_an_email_address_cannot_be_a_recipient(channel, make_user):
    make_user("noemail")
    with pytest.raises(CommandError, match="has no email address"):
        add_route("--user", "noemail")


def form(route: Route | None, **data: object) -> RouteForm:
    fields = {
        "name": "",
        "channel": str(data.pop("channel")),
        "email_recipients": "desk@bank.example",
        "reply_senders": "",
        "journal_address": "",
        "slack_url": "",
        "teams_url": "",
        "active": "on",
        **data,
    }
    return RouteForm(data=fields, instance=route)


def test_the_admin_keeps_a_webhook_url_it_never_shows(channel):
    created = form(None, channel=channel.pk, slack_url=SLACK)
    assert created.is_valid(), created.errors
    route = created.save()
    assert route.slack_url == SLACK
    assert SLACK not in created.as_p() and SLACK not in form(route, channel=channel.pk).as_p()
    kept = form(route, channel=channel.pk)  # left empty: the URL stays
    assert kept.is_valid(), kept.errors
    assert kept.save().slack_url == SLACK
    removed = form(route, channel=channel.pk, slack_url="-")
    assert removed.is_valid(), removed.errors
    assert removed.save().slack_url == ""


def test_the_admin_refuses_a_url_on_another_host(channel):
    refused = form(None, channel=channel.pk, teams_url="https://attacker.example/hook")
    assert not refused.is_valid()
    assert "allowed host" in str(refused.errors["teams_url"])


def test_the_admin_refuses_a_conversation_of_another_channel(channel, capture, db):
    from messaging.models import Channel

    conversation = capture(text_body("Hello", wamid="wamid.CMD2"))
    other = Channel.objects.create(name="Other desk", phone_number_id="999")
    refused = form(None, channel=other.pk, conversation=str(conversation.pk))
    assert not refused.is_valid()
    assert "not on this channel" in str(refused.errors)
