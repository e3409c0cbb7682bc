"""django-q2 tasks of the bridge: thin wrappers over dispatch, inbound and imap."""

from bridge import dispatch, inbound, outbound
from messaging.inbox import only_runner, woken


@woken("bridge.tasks.run")
def run() -> int:
    """Woken after every sealed batch, sent message and fetched attachment; every minute too.
    One run at a time, for up to dispatch.RUN_SECONDS; it queues the next if work is left."""
    sent = 0
    with only_runner(dispatch.RUN_LOCK) as mine:
        if mine:
            sent = dispatch.run(seconds=dispatch.RUN_SECONDS)
    if dispatch.work_left():  # after the lock is released: what a skipped run left is seen
        dispatch.wake()
    return sent


@woken("bridge.tasks.process_replies")
def process_replies() -> int:
    """Woken per received reply email; every minute too. Also marks sends a crash interrupted."""
    outbound.recover_interrupted()
    return inbound.process_pending()


def poll_imap() -> int:
    """Every minute when IMAP_URL is set."""
    from bridge import imap

    return imap.poll()
