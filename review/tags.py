"""Tags applied to conversations and messages (changes are recorded by django-auditlog)."""

from typing import Any

from messaging.models import Conversation, Message
from review.models import ConversationTag, MessageTag, Tag


def set_tag(target: Conversation | Message, tag: Tag, user: Any, *, applied: bool) -> list[Any]:
    """Apply or remove `tag` on a conversation or a message; return the tags it now has."""
    model: Any = ConversationTag if isinstance(target, Conversation) else MessageTag
    owner = {"conversation" if model is ConversationTag else "message": target}
    if applied:
        model.objects.get_or_create(**owner, tag=tag, defaults={"added_by_id": user.pk})
    else:
        model.objects.filter(**owner, tag=tag).delete()
    return list(model.objects.filter(**owner).select_related("tag").order_by("tag__name"))
