"""Slack and Teams notifications, read as they arrive at the transport seam (a local server
standing in for the incoming webhooks): their shape, what they escape, what metadata-only routes
leave out, and which failures are retried."""

import itertools
import json
import re
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bridge import chat, dispatch
from bridge.models import Notification, Route
from bridge.routes import check_webhook_url
from tests.bridge.conftest import CLIENT, free_port, text_body

SLACK = "/slack/T000/B000/XXXXSECRET"
TEAMS = "/teams/webhookb2/SECRET"
CLIENT_NAME = f"Jane Client (+{CLIENT})"
_wamids = itertools.count(1)


def wamid() -> str:
    return f"wamid.C{next(_wamids):06d}"


@pytest.fixture(autouse=True)
def portal(settings: Any) -> None:
    settings.PORTAL_URL = "https://archive.bank.example"


@pytest.fixture
def slack(channel: Any, meta: Any) -> Route:
    return Route.objects.create(channel=channel, slack_url=f"{meta.url}{SLACK}")


@pytest.fixture
def teams(channel: Any, meta: Any) -> Route:
    return Route.objects.create(channel=channel, teams_url=f"{meta.url}{TEAMS}")


def link(conversation: Any) -> str:
    return f"https://archive.bank.example/conversations/{conversation.pk}/"


# --- Slack -------------------------------------------------------------------------------------


def test_a_slack_notification_is_block_kit_with_the_client_text_escaped(capture, slack, meta):
    conversation = capture(
        text_body("Tom & Jerry <b>sell</b> <!channel> <https://evil.example|click>", wamid=wamid())
    )
    assert dispatch.run() == 1
    (payload,) = meta.posts_to(SLACK)
    title = f"New WhatsApp message from {CLIENT_NAME}"
    assert payload == {
        "text": title,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "Tom &amp; Jerry &lt;b&gt;sell&lt;/b&gt; &lt;!channel&gt; "
                    "&lt;https://evil.example|click&gt;",
                },
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in ClientWindow"},
                        "url": link(conversation),
                    }
                ],
            },
        ],
        "unfurl_links": False,
    }
    notification = Notification.objects.get()
    assert (notification.kind, notification.state, notification.attempts) == ("slack", "sent", 1)
    assert notification.reference == "HTTP 200 ok"
    (request,) = [r for r in meta.requests if r[0] == SLACK]
    assert request[1]["Content-Type"] == "application/json"


def test_a_hostile_name_is_escaped_in_the_slack_title(capture, slack, meta):
    capture(text_body("hi", wamid=wamid(), name="<!here> Ben & <@U123>"))
    dispatch.run()
    (payload,) = meta.posts_to(SLACK)
    escaped = f"New WhatsApp message from &lt;!here&gt; Ben &amp; &lt;@U123&gt; (+{CLIENT})"
    assert payload["text"] == escaped
    assert payload["blocks"][0]["text"]["text"] == f"*{escaped}*"


def test_a_slack_burst_lists_the_messages_in_order(capture, slack, meta):
    capture(
        text_body("first", wamid=wamid(), timestamp=1_760_000_000),
        text_body("second", wamid=wamid(), timestamp=1_760_000_001),
        text_body("third", wamid=wamid(), timestamp=1_760_000_002),
    )
    dispatch.run()
    (payload,) = meta.posts_to(SLACK)
    assert payload["text"] == f"New WhatsApp messages (3) from {CLIENT_NAME}"
    assert payload["blocks"][1]["text"]["text"] == "first\nsecond\nthird"


def test_a_long_message_is_cut_in_the_card(capture, slack, meta):
    capture(text_body("x" * 500, wamid=wamid()))
    dispatch.run()
    (payload,) = meta.posts_to(SLACK)
    assert payload["blocks"][1]["text"]["text"] == "x" * 299 + "…"


def test_a_message_without_text_shows_its_type(capture, slack, meta, settings):
    settings.BRIDGE_MEDIA_WAIT_SECONDS = 600  # chat notifications never wait for media
    capture(text_body("", wamid=wamid(), extra={"type": "image", "image": {"id": "M1"}}))
    dispatch.run()
    (payload,) = meta.posts_to(SLACK)
    assert payload["blocks"][1]["text"]["text"] == "[image]"


def test_a_metadata_only_slack_card_has_no_text(capture, slack, meta):
    Route.objects.filter(pk=slack.pk).update(metadata_only=True)
    conversation = capture(text_body("Confidential: buy 5,000 XYZ", wamid=wamid()))
    dispatch.run()
    ((_, _, raw),) = [r for r in meta.requests if r[0] == SLACK]
    assert b"Confidential" not in raw and b"XYZ" not in raw
    payload = json.loads(raw)
    assert [block["type"] for block in payload["blocks"]] == ["section", "actions"]
    assert payload["blocks"][1]["elements"][0]["url"] == link(conversation)
    assert CLIENT_NAME in payload["text"]


def test_outbound_messages_never_go_to_slack(capture, slack, meta):
    body = json.loads(text_body("x", wamid=wamid()))
    value = body["entry"][0]["changes"][0]["value"]
    echo = dict(value["messages"][0], to=CLIENT, **{"from": "442079460000"})
    value.pop("messages")
    value.pop("contacts")
    value["message_echoes"] = [echo]
    body["entry"][0]["changes"][0]["field"] = "smb_message_echoes"
    capture(json.dumps(body).encode())
    dispatch.run()
    assert meta.posts_to(SLACK) == []
    assert not Notification.objects.exists()


PURE = hypothesis_settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PURE
@given(text=st.text())
def test_slack_escaping_leaves_no_control_characters_and_loses_nothing(text):
    escaped = chat._slack_escape(text)
    assert "<" not in escaped and ">" not in escaped
    assert re.search(r"&(?!amp;|lt;|gt;)", escaped) is None
    unescaped = escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert unescaped == text


# --- Teams -------------------------------------------------------------------------------------


def test_a_teams_notification_is_an_adaptive_card_with_markdown_escaped(capture, teams, meta):
    text = "**Buy** [now](https://evil.example) _quickly_ # `code` ~x~ - !"
    conversation = capture(text_body(text, wamid=wamid(), name="Jane *Client*"))
    assert dispatch.run() == 1
    (payload,) = meta.posts_to(TEAMS)
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title, channel_line, message = card["body"]
    assert title == {
        "type": "TextBlock",
        "text": rf"New WhatsApp message from Jane \*Client\* \(+{CLIENT}\)",
        "weight": "Bolder",
        "wrap": True,
    }
    assert channel_line["text"] == "Private banking" and channel_line["isSubtle"] is True
    assert message == {
        "type": "TextBlock",
        "text": r"\*\*Buy\*\* \[now\]\(https://evil.example\) \_quickly\_ \# \`code\` \~x\~ \- \!",
        "wrap": True,
    }
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open in ClientWindow", "url": link(conversation)}
    ]
    notification = Notification.objects.get()
    assert (notification.kind, notification.state) == ("teams", "sent")


def test_a_teams_burst_is_one_card_with_a_block_per_message(capture, teams, meta):
    capture(
        text_body("first", wamid=wamid(), timestamp=1_760_000_000),
        text_body("second", wamid=wamid(), timestamp=1_760_000_001),
    )
    dispatch.run()
    (payload,) = meta.posts_to(TEAMS)
    body = payload["attachments"][0]["content"]["body"]
    assert body[0]["text"] == rf"New WhatsApp messages \(2\) from Jane Client \(+{CLIENT}\)"
    assert [block["text"] for block in body[2:]] == ["first", "second"]


def test_a_metadata_only_teams_card_has_no_text(capture, teams, meta):
    Route.objects.filter(pk=teams.pk).update(metadata_only=True)
    conversation = capture(text_body("Confidential: buy 5,000 XYZ", wamid=wamid()))
    dispatch.run()
    ((_, _, raw),) = [r for r in meta.requests if r[0] == TEAMS]
    assert b"Confidential" not in raw and b"XYZ" not in raw
    card = json.loads(raw)["attachments"][0]["content"]
    assert len(card["body"]) == 2
    assert card["actions"][0]["url"] == link(conversation)


_MARKDOWN = "\\*_[]()#>`~-!|"


@PURE
@given(text=st.text())
def test_teams_escaping_escapes_every_markdown_character_and_loses_nothing(text):
    escaped = chat._teams_plain(text)
    assert re.sub(r"\\(.)", r"\1", escaped, flags=re.DOTALL) == text
    # every markdown character is escaped: reading pairs left to right, none is bare
    position = 0
    while position < len(escaped):
        if escaped[position] == "\\":
            assert escaped[position + 1] in _MARKDOWN
            position += 2
        else:
            assert escaped[position] not in _MARKDOWN
            position += 1


# --- every kind on one route ------------------------------------------------------------------


def test_a_route_with_email_slack_and_teams_sends_each_once(capture, channel, meta, smtp):
    Route.objects.create(
        channel=channel,
        email_recipients=["rm@bank.example"],
        slack_url=f"{meta.url}{SLACK}",
        teams_url=f"{meta.url}{TEAMS}",
        journal_address="journal@archive.bank.example",
    )
    capture(text_body("one", wamid=wamid()), text_body("two", wamid=wamid()))
    assert dispatch.run() == 5  # email, Slack, Teams, and a journal copy per message
    assert sorted(Notification.objects.values_list("kind", flat=True)) == [
        "email",
        "journal",
        "journal",
        "slack",
        "teams",
    ]
    assert len(meta.posts_to(SLACK)) == 1 and len(meta.posts_to(TEAMS)) == 1
    assert len(smtp.received) == 3


# --- where it may post, and what failures mean ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/services/T/B/X", True),
        ("https://acme.webhook.office.com/webhookb2/x", True),
        ("https://webhook.office.com/webhookb2/x", True),
        ("http://hooks.slack.com/services/T/B/X", False),  # http only for a loopback server
        ("https://hooks.slack.com.evil.example/x", False),
        ("https://evilhooks.slack.com/x", False),
        ("https://hooks.slack.com@evil.example/x", False),
        ("https://evil.example/?https://hooks.slack.com/", False),
        ("https://evilwebhook.office.com/x", False),
        ("ftp://hooks.slack.com/x", False),
        ("hooks.slack.com/services/x", False),
        ("", False),
        ("http://127.0.0.1:8080/hook", True),
        ("http://localhost/hook", False),  # not on the list
    ],
)
def test_only_allowed_hosts_are_allowed(settings, url, allowed):
    settings.BRIDGE_WEBHOOK_HOSTS = ["hooks.slack.com", ".webhook.office.com", "127.0.0.1"]
    assert chat.allowed(url) is allowed


def test_the_route_form_refuses_a_url_on_another_host(settings):
    settings.BRIDGE_WEBHOOK_HOSTS = ["hooks.slack.com"]
    assert check_webhook_url(" https://hooks.slack.com/x ", "Slack") == "https://hooks.slack.com/x"
    with pytest.raises(ValidationError, match="allowed host"):
        check_webhook_url("https://evil.example/x", "Slack")


@pytest.mark.parametrize("kind", ["slack", "teams"])
def test_a_url_on_a_host_not_allowed_fails_at_once_and_posts_nothing(
    capture, channel, meta, settings, kind
):
    settings.BRIDGE_WEBHOOK_HOSTS = ["hooks.slack.com"]  # no longer the test server
    Route.objects.create(channel=channel, **{f"{kind}_url": f"{meta.url}{SLACK}"})
    capture(text_body("hi", wamid=wamid()))
    assert dispatch.run() == 0
    notification = Notification.objects.get()
    assert (notification.state, notification.attempts) == ("failed", 1)
    assert "not on an allowed host" in notification.last_error
    assert meta.requests == []


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_a_revoked_webhook_fails_permanently(capture, slack, meta, status):
    meta.handler.plan = [(status, "no_service")]
    capture(text_body("hi", wamid=wamid()))
    dispatch.run()
    notification = Notification.objects.get()
    assert (notification.state, notification.attempts) == ("failed", 1)
    assert notification.last_error == f"ChatError: webhook: HTTP {status} no_service"
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        dispatch.run()
    assert len(meta.posts_to(SLACK)) == 1  # never tried again


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_server_error_is_retried(capture, teams, meta, status):
    meta.handler.plan = [(status, "busy")]
    capture(text_body("hi", wamid=wamid()))
    dispatch.run()
    notification = Notification.objects.get()
    assert (notification.state, notification.attempts) == ("pending", 1)
    assert notification.last_error == f"ChatError: webhook: HTTP {status}"
    assert notification.due_at > timezone.now() + timedelta(seconds=25)
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        assert dispatch.run() == 1
    notification.refresh_from_db()
    assert (notification.state, notification.attempts, notification.last_error) == ("sent", 2, "")
    first, second = meta.posts_to(TEAMS)
    assert first == second


def test_a_chat_notification_fails_after_max_attempts(capture, slack, meta, settings):
    settings.BRIDGE_MAX_ATTEMPTS = 2
    meta.handler.plan = [(503, "down"), (503, "down")]
    capture(text_body("hi", wamid=wamid()))
    dispatch.run()
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        dispatch.run()
    notification = Notification.objects.get()
    assert (notification.state, notification.attempts) == ("failed", 2)


def test_a_webhook_nobody_answers_is_retried_without_naming_the_url(capture, channel, settings):
    settings.BRIDGE_WEBHOOK_HOSTS = ["127.0.0.1"]
    url = f"http://127.0.0.1:{free_port()}/slack/T000/B000/XXXXSECRET"
    Route.objects.create(channel=channel, slack_url=url)
    capture(text_body("hi", wamid=wamid()))
    dispatch.run()
    notification = Notification.objects.get()
    assert (notification.state, notification.attempts) == ("pending", 1)
    assert notification.last_error == "ChatError: webhook failed: ConnectError"
    assert "SECRET" not in notification.last_error


class _Redirect(BaseHTTPRequestHandler):
    target = ""
    hits: list[str] = []

    def do_POST(self) -> None:
        _Redirect.hits.append(self.path)
        self.send_response(302)
        self.send_header("Location", _Redirect.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_redirect_is_refused_and_not_followed(capture, channel, meta):
    _Redirect.target, _Redirect.hits = f"{meta.url}/stolen", []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        Route.objects.create(
            channel=channel, slack_url=f"http://127.0.0.1:{server.server_port}/hook"
        )
        capture(text_body("hi", wamid=wamid()))
        dispatch.run()
    finally:
        server.shutdown()
    assert _Redirect.hits == ["/hook"]
    assert meta.requests == []
    notification = Notification.objects.get()
    assert (notification.state, notification.attempts) == ("failed", 1)
    assert "redirect" in notification.last_error
