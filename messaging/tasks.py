"""django-q2 tasks of the capture path: thin wrappers over messaging.sequencer."""

from messaging.inbox import woken
from messaging.sequencer import process_deliveries


@woken("messaging.tasks.seal_deliveries")
def seal_deliveries() -> int:
    """Woken per delivery and run by the sweep schedule; a run with nothing pending is a no-op."""
    return process_deliveries()


@woken("messaging.tasks.fetch_media")
def fetch_media() -> int:
    """Woken after each sealed batch and run by a schedule: fetch due media."""
    from messaging.media import fetch_pending_media

    return fetch_pending_media()
