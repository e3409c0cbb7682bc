"""What the apps above messaging do when capture seals something, registered by each of them in
its AppConfig.ready() so that messaging names none of them (docs/ARCHITECTURE.md, the floors).

Two kinds of hook:
- inside the sealing transaction (`on_sealed`, `on_attached`): called with the records just
  written, in registration order; what they raise rolls the batch back. Retention fixes each
  record's `retain_until` here (retention/assign.py).
- after it commits (`wake_on_messages`, `wake_on_media`): a wake-up of a task, queued with
  `transaction.on_commit`, so Django drops it if the batch rolls back. Every woken task also runs
  on a schedule, so a missing wake-up only delays its work.

An app whose records need a hook names it in its AppConfig's `capture_hooks`; messaging.E001
fails when it registered none (messaging/checks.py).
"""

from collections.abc import Callable, Sequence
from typing import Any

from django.db import models, transaction

from messaging.models import Attachment, DuplicateItem, MediaFile

Sealed = Callable[[Sequence[models.Model], Sequence[DuplicateItem]], None]
Attached = Callable[[Attachment, MediaFile | None], None]
Wake = Callable[[], None]

# hook point → what is registered there, in registration order (INSTALLED_APPS order)
_registry: dict[str, list[Any]] = {"sealed": [], "attached": [], "messages": [], "media": []}


def _add(point: str, func: Any) -> None:
    if func not in _registry[point]:  # ready() run twice registers once
        _registry[point].append(func)


def on_sealed(func: Sealed) -> Sealed:
    """Run `func(records, duplicates)` in every sequencer batch's transaction, after its
    records and duplicates are written (messaging/sequencer.py)."""
    _add("sealed", func)
    return func


def on_attached(func: Attached) -> Attached:
    """Run `func(attachment, media)` in the transaction that records a message's media outcome
    (messaging/media.py); `media` is None when the media could not be stored."""
    _add("attached", func)
    return func


def wake_on_messages(func: Wake) -> Wake:
    """Call `func` after a sealed batch with messages commits."""
    _add("messages", func)
    return func


def wake_on_media(func: Wake) -> Wake:
    """Call `func` after a message's media outcome commits."""
    _add("media", func)
    return func


def registered(point: str) -> list[Any]:
    """What is registered at a hook point, in order (for messaging/checks.py)."""
    return list(_registry.get(point, ()))


def sealed(records: Sequence[models.Model], duplicates: Sequence[DuplicateItem]) -> None:
    for func in _registry["sealed"]:
        func(records, duplicates)


def attached(attachment: Attachment, media: MediaFile | None) -> None:
    for func in _registry["attached"]:
        func(attachment, media)


def messages_sealed() -> None:
    for wake in _registry["messages"]:
        transaction.on_commit(wake)


def media_stored() -> None:
    for wake in _registry["media"]:
        transaction.on_commit(wake)
