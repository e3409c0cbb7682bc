"""The project's django-q2 schedules, kept in line with settings after every migrate."""

from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django_q.models import Schedule

from archive.privileges import migration_alias


def schedules() -> dict[str, dict[str, Any]]:
    """name → (function, interval). The sweeps are backstops for a lost wake-up."""
    every = Schedule.MINUTES
    return {
        "ledger checkpoint": {
            "func": "archive.tasks.checkpoint_task",
            "schedule_type": every,
            "minutes": settings.LEDGER_CHECKPOINT_MINUTES,
        },
        "delivery sweep": {
            "func": "messaging.tasks.seal_deliveries",
            "schedule_type": every,
            "minutes": 1,
        },
        # raises the backlog alarm (messaging/health.py); run_sequencer checks it too
        "backlog alarm": {
            "func": "messaging.health.check_backlog",
            "schedule_type": every,
            "minutes": 1,
        },
        "media fetch": {
            "func": "messaging.tasks.fetch_media",
            "schedule_type": every,
            "minutes": 2,
        },
        "lexicon scan": {
            "func": "review.tasks.scan_new_messages",
            "schedule_type": every,
            "minutes": 1,
        },
        "review sampling": {
            "func": "review.tasks.draw_samples",
            "schedule_type": Schedule.HOURLY,
        },
        "export expiry": {
            "func": "exports.tasks.expire_exports",
            "schedule_type": Schedule.DAILY,
        },
        "retention disposition": {
            "func": "retention.tasks.apply_retention",
            "schedule_type": Schedule.DAILY,
        },
        "legal hold refresh": {
            "func": "retention.tasks.refresh_holds",
            "schedule_type": every,
            "minutes": 15,
        },
        "bridge": {
            "func": "bridge.tasks.run",
            "schedule_type": every,
            "minutes": 1,
        },
        "reply emails": {
            "func": "bridge.tasks.process_replies",
            "schedule_type": every,
            "minutes": 1,
        },
        "imap poll": {  # a no-op unless IMAP_URL is set
            "func": "bridge.tasks.poll_imap",
            "schedule_type": every,
            "minutes": 1,
        },
        "archive verification": {
            "func": "archive.tasks.verify_task",
            "schedule_type": Schedule.DAILY,
        },
    }


def ensure_schedules(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """post_migrate: create or update every schedule, repeating forever."""
    if using != migration_alias():
        return
    for name, defaults in schedules().items():
        Schedule.objects.using(using).update_or_create(
            name=name, defaults={**defaults, "repeats": -1}
        )
