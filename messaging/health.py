"""The ingestion health figures administrators watch (messaging/views.py shows them), and the
backlog alarm: deliveries waiting too long to be sealed.

check_backlog() is the one check. It runs every minute (archive/schedules.py), in the sealing
loop's timer (it must fire when the django-q2 cluster is wedged), on every /readyz call and on the
ingestion page. An episode starts when the oldest pending delivery passes BACKLOG_ALARM_MINUTES
and ends when it falls back under; the BacklogAlarm row lets exactly one process log each start.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Exists, Max, OuterRef, QuerySet, Sum
from django.utils import timezone

from messaging.media import count_due
from messaging.models import (
    Attachment,
    BacklogAlarm,
    Delivery,
    DeliverySeal,
    MediaAttempt,
    PendingDelivery,
    RejectedWebhook,
    Reseal,
    UnparsedItem,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backlog:
    """How long the oldest pending delivery has waited, measured at `measured_at`."""

    oldest_pending: datetime | None
    measured_at: datetime

    @property
    def age(self) -> timedelta:
        return self.measured_at - self.oldest_pending if self.oldest_pending else timedelta(0)

    @property
    def age_minutes(self) -> int:
        return int(self.age.total_seconds() // 60)

    @property
    def threshold_minutes(self) -> int:
        return int(settings.BACKLOG_ALARM_MINUTES)

    @property
    def alarming(self) -> bool:
        return self.age > timedelta(minutes=self.threshold_minutes)


def _pending() -> QuerySet[PendingDelivery]:
    """The deliveries waiting for their seal, read from the sequencer's queue: as short as the
    backlog, where an anti-join of every delivery ever received with its seal grew with the
    archive (68-80 ms at 200,000 messages, issue 20). Each queued delivery is still checked for
    a seal (by key, one row each): one sealed is not pending, whatever the queue says."""
    return PendingDelivery.objects.filter(delivery__seal__isnull=True)


def measure_backlog() -> Backlog:
    """One query: the oldest pending delivery's arrival (by id, the order the sequencer seals)."""
    oldest = (
        _pending().order_by("delivery_id").values_list("delivery__received_at", flat=True).first()
    )
    return Backlog(oldest_pending=oldest, measured_at=timezone.now())


def check_backlog(backlog: Backlog | None = None) -> bool:
    """Raise or clear the backlog alarm; log at ERROR once when an episode starts. Returns whether
    the alarm is raised. Two short reads when nothing changes (the queue's head, the alarm's
    row), whatever the archive's size; still meant for about once a minute, not every tick of
    a loop."""
    if backlog is None:
        backlog = measure_backlog()
    raised = BacklogAlarm.objects.filter(pk=1, raised_at__isnull=False).exists()
    if backlog.alarming:
        if not raised and _raise_alarm(backlog.measured_at):
            # counts and ages only: never anything a delivery says
            logger.error(
                "ingestion backlog: %d deliveries waiting to be sealed, the oldest for %d minutes"
                " (alarm after %d)",
                _pending().count(),
                backlog.age_minutes,
                backlog.threshold_minutes,
            )
    elif raised and BacklogAlarm.objects.filter(pk=1, raised_at__isnull=False).update(
        raised_at=None
    ):
        logger.info(
            "ingestion backlog cleared: no delivery has waited %d minutes",
            backlog.threshold_minutes,
        )
    return backlog.alarming


def _raise_alarm(at: datetime) -> bool:
    """True for the one process whose write started the episode (the row may not exist yet)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO messaging_backlogalarm (id, raised_at) VALUES (1, %s)"
            " ON CONFLICT (id) DO UPDATE SET raised_at = EXCLUDED.raised_at"
            " WHERE messaging_backlogalarm.raised_at IS NULL RETURNING id",
            [at],
        )
        return cursor.fetchone() is not None


@dataclass(frozen=True)
class IngestionHealth:
    backlog: Backlog
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
    pending = _pending()
    seals = DeliverySeal.objects.aggregate(duplicates=Sum("duplicates"))
    backlog = measure_backlog()
    return IngestionHealth(
        backlog=backlog,
        pending=pending.count(),
        sealed=DeliverySeal.objects.count(),
        last_received=Delivery.objects.aggregate(last=Max("received_at"))["last"],
        oldest_pending=backlog.oldest_pending,
        duplicates=seals["duplicates"] or 0,
        unparsed=UnparsedItem.objects.count(),
        unknown_channel=UnparsedItem.objects.filter(reason__startswith="unknown channel").count(),
        media_pending=count_due(limit=1000),
        media_failed_attempts=MediaAttempt.objects.count(),
        media_unavailable=Attachment.objects.exclude(outcome=Attachment.Outcome.STORED).count(),
        rejected=list(RejectedWebhook.objects.order_by("-day", "reason")[:30]),
        recent_unparsed=list(
            UnparsedItem.objects.defer("raw")
            .annotate(
                resealed=Exists(Reseal.objects.filter(unparsed=OuterRef("pk"), unparsed_again=0))
            )
            .order_by("-id")[:50]
        ),
    )
