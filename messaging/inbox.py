"""Waking background tasks after something is committed. Every one of them also runs on a
schedule (archive/schedules.py), so a wake-up that cannot be queued only delays the work."""

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def queue(func: str, group: str) -> None:
    """Queue a django-q2 task; never raises (its schedule is the backstop)."""
    try:
        from django_q.tasks import async_task

        async_task(func, q_options={"group": group})
    except Exception:  # what woke it (a webhook's 200, a sealing) must not depend on the queue
        logger.exception("could not queue %s", func)


def wake_sequencer(delivery_id: int) -> None:
    """Queue a sequencer run once the delivery is committed. If queueing fails the delivery is
    still safe in the inbox: the periodic sweep seals it."""
    transaction.on_commit(lambda: queue("messaging.tasks.seal_deliveries", "sequencer"))


def wake_media_fetcher() -> None:
    queue("messaging.tasks.fetch_media", "media")


def wake_reviewers() -> None:
    """The lexicon scan of what was just sealed."""
    queue("review.tasks.scan_new_messages", "lexicon")


def wake_bridge() -> None:
    """The bridge: staff notifications and journal copies."""
    queue("bridge.tasks.run", "bridge")
