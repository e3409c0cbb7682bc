"""Slack and Teams notifications: a card naming the client, an excerpt (or only that there is a
message, for metadata-only routes) and a link to the transcript.

`post()` is the transport seam for both: one HTTPS POST of JSON to the route's incoming-webhook
URL, only to BRIDGE_WEBHOOK_HOSTS, no redirects followed, with a timeout. Tests point the hosts at
a local server and read what arrives.
"""

from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from messaging.graph import host_listed
from messaging.models import Conversation, Message

EXCERPT = 300  # characters of each message shown in a card


class ChatError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def allowed(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("https", "http"):
        return False
    if not host_listed(host, settings.BRIDGE_WEBHOOK_HOSTS):
        return False
    # plain http only for a loopback test server, never for a real service
    return parts.scheme == "https" or host in ("127.0.0.1", "localhost", "::1")


def post(url: str, payload: dict[str, Any]) -> str:
    """POST the payload; the service's answer (a short text) when it accepted it."""
    if not allowed(url):
        raise ChatError(
            "the webhook URL is not on an allowed host (BRIDGE_WEBHOOK_HOSTS)", permanent=True
        )
    timeout = httpx.Timeout(settings.WHATSAPP_HTTP_TIMEOUT, connect=5.0)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            response = client.post(url, json=payload)
    except httpx.HTTPError as exc:
        raise ChatError(f"webhook failed: {type(exc).__name__}") from None
    if response.is_redirect:
        raise ChatError("webhook answered with a redirect (refused)", permanent=True)
    if response.status_code in (400, 403, 404, 410):
        # a revoked or mistyped webhook, or a payload the service rejects: retrying cannot help
        raise ChatError(
            f"webhook: HTTP {response.status_code} {response.text[:200]}", permanent=True
        )
    if not 200 <= response.status_code < 300:
        raise ChatError(f"webhook: HTTP {response.status_code}")
    return f"HTTP {response.status_code} {response.text[:100]}".strip()


def _excerpt(message: Message, metadata_only: bool) -> str:
    if metadata_only:
        return f"a {message.type} message" if message.type != "text" else "a message"
    text = message.text.strip()
    if not text:
        return f"[{message.type}]"
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def slack_payload(
    client: str, conversation: Conversation, messages: list[Message], link: str, metadata_only: bool
) -> dict[str, Any]:
    """Slack Block Kit; `text` is the fallback shown in notifications. Slack's mrkdwn treats &, <
    and > as control characters: they are escaped in everything a client wrote."""
    count = len(messages)
    title = f"New WhatsApp {'message' if count == 1 else f'messages ({count})'} from {client}"
    # at most 3,000 characters per section: whole lines are left out, never half an escape
    lines: list[str] = []
    size = 0
    for message in messages:
        line = _slack_escape(_excerpt(message, metadata_only))
        if size + len(line) + 1 > 2900:
            lines.append(f"… and {len(messages) - len(lines)} more in ClientWindow")
            break
        lines.append(line)
        size += len(line) + 1
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(title)}*"}},
    ]
    if not metadata_only:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open in ClientWindow"},
                    "url": link,
                }
            ],
        }
    )
    return {"text": _slack_escape(title), "blocks": blocks, "unfurl_links": False}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def teams_payload(
    client: str, conversation: Conversation, messages: list[Message], link: str, metadata_only: bool
) -> dict[str, Any]:
    """An Adaptive Card in the message envelope Teams' incoming webhooks (and Workflows) take.
    TextBlocks render a Markdown subset: what a client wrote is shown as plain text."""
    count = len(messages)
    title = f"New WhatsApp {'message' if count == 1 else f'messages ({count})'} from {client}"
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _teams_plain(title), "weight": "Bolder", "wrap": True},
        {"type": "TextBlock", "text": conversation.channel.name, "isSubtle": True, "wrap": True},
    ]
    if not metadata_only:
        body.extend(
            {"type": "TextBlock", "text": _teams_plain(_excerpt(m, False)), "wrap": True}
            for m in messages
        )
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": "Open in ClientWindow", "url": link}],
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def _teams_plain(text: str) -> str:
    """Backslash-escape the Markdown that TextBlocks interpret, so a client cannot add links or
    formatting to a card."""
    for char in "\\*_[]()#>`~-!|":
        text = text.replace(char, "\\" + char)
    return text
