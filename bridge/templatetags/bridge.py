"""{% reply_form conversation %}: the transcript's reply box (for users allowed to reply)."""

import uuid
from typing import Any

from django import template

from bridge import outbound
from bridge.models import MessageTemplate
from messaging.models import Conversation

register = template.Library()


@register.inclusion_tag("bridge/reply_form.html", takes_context=True)
def reply_form(context: dict[str, Any], conversation: Conversation) -> dict[str, Any]:
    return {
        "submission": uuid.uuid4().hex,
        "conversation": conversation,
        "csrf_token": context.get("csrf_token"),
        "window_open": outbound.window_open(conversation),
        "closes": outbound.window_closes(conversation),
        "templates": MessageTemplate.objects.filter(
            channel_id=conversation.channel_id, active=True
        ).order_by("name", "language"),
    }
