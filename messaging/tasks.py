"""django-q2 tasks of the capture path: thin wrappers over messaging.sequencer."""

import time

from messaging.inbox import only_runner, queue, woken
from messaging.models import Delivery
from messaging.sequencer import BATCH, process_batch

RUN_LOCK = 0x436C5769_53657152  # "ClWiSeqR": one sealing run at a time
RUN_SECONDS = 1.0  # then the worker is free for other tasks; a next run is queued if need be


@woken("messaging.tasks.seal_deliveries")
def seal_deliveries() -> int:
    """Woken per delivery and run by the sweep schedule: seal for up to RUN_SECONDS, then queue
    the next run if deliveries are still pending. A second worker never waits behind the first:
    it returns, and the first queues what is left."""
    sealed = 0
    with only_runner(RUN_LOCK) as mine:
        if not mine:
            return 0
        deadline = time.monotonic() + RUN_SECONDS
        while time.monotonic() < deadline:
            count = process_batch(BATCH)
            sealed += count
            if count == 0:
                break
    # after the lock is released: whatever a skipped run left is seen here
    if Delivery.objects.filter(seal__isnull=True).exists():
        queue("messaging.tasks.seal_deliveries", "sequencer")
    return sealed


@woken("messaging.tasks.fetch_media")
def fetch_media() -> int:
    """Woken after each sealed batch and run by a schedule: fetch due media."""
    from messaging.media import fetch_pending_media

    return fetch_pending_media()
