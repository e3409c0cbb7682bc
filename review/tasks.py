"""django-q2 tasks of the review app: thin wrappers over review.lexicon and review.sampling."""

from messaging.inbox import queue, woken
from review.lexicon import scan_new_messages as _scan
from review.sampling import draw_due


def wake() -> None:
    """Queue the lexicon scan (after each sealed batch with messages, messaging/hooks.py)."""
    queue("review.tasks.scan_new_messages", "lexicon")


@woken("review.tasks.scan_new_messages")
def scan_new_messages() -> int:
    """Woken after each sealed batch and run by a schedule; nothing new is a no-op."""
    return _scan()


def draw_samples() -> int:
    """Daily: each sampling policy's draw for its last complete period, once."""
    return draw_due()
