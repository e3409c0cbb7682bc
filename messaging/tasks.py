"""django-q2 tasks of the capture path: thin wrappers over messaging.sequencer. Deliveries are
sealed first by the sealer process (messaging/sealer.py); these are the fallback."""

import time

from messaging.inbox import only_runner, queue, woken
from messaging.models import PendingDelivery
from messaging.sequencer import BATCH, process_batch

RUN_LOCK = 0x436C5769_53657152  # "ClWiSeqR": one sealing run at a time
RUN_SECONDS = 1.0  # then the worker is free for other tasks; a next run is queued if need be


@woken("messaging.tasks.seal_deliveries")
def seal_deliveries() -> int:
    """The second path to sealing, after the sealer (`run_sequencer`, messaging/sealer.py): run
    by the every-minute sweep schedule, for a host that runs no sealer. Seal for up to
    RUN_SECONDS, then queue the next run if deliveries are still pending. Beside a sealer it is
    harmless: the two take turns on the sequencer's lock. A second worker never waits behind
    the first: it returns, and the first queues what is left."""
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
    if PendingDelivery.objects.exists():
        queue("messaging.tasks.seal_deliveries", "sequencer")
    return sealed


@woken("messaging.tasks.fetch_media")
def fetch_media() -> int:
    """Woken after each sealed batch and run by a schedule: fetch due media."""
    from messaging.media import fetch_pending_media

    return fetch_pending_media()
