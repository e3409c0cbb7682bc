"""The archive's django-q2 schedules, kept in line with settings after every migrate."""

from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django_q.models import Schedule

from archive.privileges import migration_alias


def ensure_schedules(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """post_migrate: a checkpoint every LEDGER_CHECKPOINT_MINUTES, a sweep of the delivery inbox
    every minute (the backstop for a lost wake-up), a verification every day."""
    if using != migration_alias():
        return
    Schedule.objects.using(using).update_or_create(
        name="ledger checkpoint",
        defaults={
            "func": "archive.tasks.checkpoint_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.LEDGER_CHECKPOINT_MINUTES,
            "repeats": -1,
        },
    )
    Schedule.objects.using(using).update_or_create(
        name="delivery sweep",
        defaults={
            "func": "messaging.tasks.seal_deliveries",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
    Schedule.objects.using(using).update_or_create(
        name="media fetch",
        defaults={
            "func": "messaging.tasks.fetch_media",
            "schedule_type": Schedule.MINUTES,
            "minutes": 2,
            "repeats": -1,
        },
    )
    Schedule.objects.using(using).update_or_create(
        name="archive verification",
        defaults={
            "func": "archive.tasks.verify_task",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
    )
