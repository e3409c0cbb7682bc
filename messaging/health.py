"""The ingestion health figures administrators watch (messaging/views.py shows them)."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max, Sum

from messaging.media import due_messages
from messaging.models import (
    Attachment,
    Delivery,
    DeliverySeal,
    MediaAttempt,
    RejectedWebhook,
    UnparsedItem,
)


@dataclass(frozen=True)
class IngestionHealth:
    pending: int
    sealed: int
    last_received: datetime | None
    oldest_pending: datetime | None
    duplicates: int
    unparsed: int
    unknown_channel: int
    media_pending: int
    media_failed_attempts: int
    media_unavailable: int
    rejected: list[RejectedWebhook]
    recent_unparsed: list[UnparsedItem]


def ingestion_health() -> IngestionHealth:
    pending = Delivery.objects.filter(seal__isnull=True)
    seals = DeliverySeal.objects.aggregate(duplicates=Sum("duplicates"))
    return IngestionHealth(
        pending=pending.count(),
        sealed=DeliverySeal.objects.count(),
        last_received=Delivery.objects.aggregate(last=Max("received_at"))["last"],
        oldest_pending=pending.order_by("id").values_list("received_at", flat=True).first(),
        duplicates=seals["duplicates"] or 0,
        unparsed=UnparsedItem.objects.count(),
        unknown_channel=UnparsedItem.objects.filter(reason__startswith="unknown channel").count(),
        media_pending=len(due_messages(limit=1000)),
        media_failed_attempts=MediaAttempt.objects.count(),
        media_unavailable=Attachment.objects.exclude(outcome=Attachment.Outcome.STORED).count(),
        rejected=list(RejectedWebhook.objects.order_by("-day", "reason")[:30]),
        recent_unparsed=list(UnparsedItem.objects.order_by("-id")[:50]),
    )
