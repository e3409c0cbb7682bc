"""What the reconciliation page lists: journal copies not yet accepted, staff notifications
being retried or given up on, reply emails not (fully) sent, sends to clients not confirmed, and
how far the planner is behind. It reads the querysets bridge/access.py hands the view."""

from typing import Any

from django.db.models import Count, Min, QuerySet

from . import dispatch
from .models import InboundEmail, Notification, Outbound

LIST_SIZE = 200
RELATED = ("route", "conversation__channel")


def figures(
    notifications: QuerySet[Notification],
    emails: QuerySet[InboundEmail],
    sends: QuerySet[Outbound],
) -> dict[str, Any]:
    pending = notifications.filter(state=Notification.State.PENDING)
    journal = pending.filter(kind=Notification.Kind.JOURNAL)
    return {
        "journal": journal.select_related(*RELATED)
        .annotate(count=Count("messages"), first=Min("messages__sent_at"))
        .order_by("created_at")[:LIST_SIZE],
        "journal_total": journal.count(),
        "staff": pending.exclude(kind=Notification.Kind.JOURNAL)
        .filter(attempts__gt=0)
        .select_related(*RELATED)
        .order_by("created_at")[:LIST_SIZE],
        "failed": notifications.filter(state=Notification.State.FAILED)
        .select_related(*RELATED)
        .annotate(count=Count("messages"))
        .order_by("-created_at")[:LIST_SIZE],
        "replies": emails.exclude(
            state__in=[InboundEmail.State.SENT, InboundEmail.State.IGNORED]
        ).order_by("-received_at")[:LIST_SIZE],
        "sends": sends.filter(
            state__in=[Outbound.State.UNKNOWN, Outbound.State.FAILED, Outbound.State.SENDING]
        )
        .select_related("conversation__channel")
        .order_by("-created_at")[:LIST_SIZE],
        "unplanned": dispatch.unplanned(),
    }
