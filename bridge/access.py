"""Who may reply to clients and see or retry the bridge's work: one checked access function per
kind of object (docs/ARCHITECTURE.md §5), each taking the request, used by bridge/views.py.

Replying needs `bridge.reply_to_client` (given per user, in the admin) on top of reading the
archive; the reconciliation page needs `bridge.view_reconciliation`; retrying a notification
`bridge.change_route`. A user without the permission gets a 403 that says so; a conversation
that does not exist is a 404 whoever asks.
"""

from django.db.models import QuerySet
from django.http import HttpRequest

from messaging.models import Conversation
from review.access import conversation_for_user, require

from .models import InboundEmail, MessageTemplate, Notification, Outbound

REPLY = "bridge.reply_to_client"
RECONCILE = "bridge.view_reconciliation"
RETRY = "bridge.change_route"


def conversation_to_reply_in(request: HttpRequest, pk: int) -> Conversation:
    return conversation_for_user(request, pk, REPLY)


def templates_for_user(
    request: HttpRequest, conversation: Conversation
) -> QuerySet[MessageTemplate]:
    """The templates one may send in this conversation: its number's approved ones."""
    require(request, REPLY)
    return MessageTemplate.objects.filter(channel_id=conversation.channel_id, active=True)


def replies_of_user(request: HttpRequest) -> QuerySet[Outbound]:
    """What this user sent from the portal (a form's one-time key is looked up here)."""
    require(request, REPLY)
    return Outbound.objects.filter(user_id=request.user.pk or 0)


def notifications_for_user(request: HttpRequest) -> QuerySet[Notification]:
    require(request, RECONCILE)
    return Notification.objects.all()


def retriable_notifications(request: HttpRequest) -> QuerySet[Notification]:
    """The notifications one may try again now: any not yet sent. Retrying needs
    `bridge.change_route` only (administrators, who hold it, also see the page)."""
    require(request, RETRY)
    return Notification.objects.exclude(state=Notification.State.SENT)


def reply_emails_for_user(request: HttpRequest) -> QuerySet[InboundEmail]:
    require(request, RECONCILE)
    return InboundEmail.objects.all()


def sends_for_user(request: HttpRequest) -> QuerySet[Outbound]:
    require(request, RECONCILE)
    return Outbound.objects.all()
