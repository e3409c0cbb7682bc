"""django-q2 tasks of the bridge: thin wrappers over dispatch, inbound and imap."""

from bridge import dispatch, inbound, outbound
from messaging.inbox import woken


@woken("bridge.tasks.run")
def run() -> int:
    """Woken after every sealed batch, sent message and fetched attachment; every minute too."""
    return dispatch.run()


@woken("bridge.tasks.process_replies")
def process_replies() -> int:
    """Woken per received reply email; every minute too. Also marks sends a crash interrupted."""
    outbound.recover_interrupted()
    return inbound.process_pending()


def poll_imap() -> int:
    """Every minute when IMAP_URL is set."""
    from bridge import imap

    return imap.poll()
