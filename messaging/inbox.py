"""Waking the sequencer after a delivery is committed, and the sweep that catches the rest."""

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def wake_sequencer(delivery_id: int) -> None:
    """Queue a sequencer run once the delivery is committed. If queueing fails the delivery is
    still safe in the inbox: the periodic sweep seals it."""

    def enqueue() -> None:
        try:
            from django_q.tasks import async_task

            async_task("messaging.tasks.seal_deliveries", q_options={"group": "sequencer"})
        except Exception:  # the 200 must not depend on the queue; the sweep is the backstop
            logger.exception("could not queue the sequencer for delivery %s", delivery_id)

    transaction.on_commit(enqueue)


def wake_media_fetcher() -> None:
    """Queue a media fetch; the media schedule is the backstop if this fails."""
    try:
        from django_q.tasks import async_task

        async_task("messaging.tasks.fetch_media", q_options={"group": "media"})
    except Exception:
        logger.exception("could not queue the media fetcher")


def wake_reviewers() -> None:
    """Queue the lexicon scan of what was just sealed; its schedule is the backstop."""
    try:
        from django_q.tasks import async_task

        async_task("review.tasks.scan_new_messages", q_options={"group": "lexicon"})
    except Exception:
        logger.exception("could not queue the lexicon scan")


def wake_bridge() -> None:
    """Queue the bridge (notifications, journal); its schedule is the backstop."""
    try:
        from django_q.tasks import async_task

        async_task("bridge.tasks.run", q_options={"group": "bridge"})
    except Exception:
        logger.exception("could not queue the bridge")
