"""A message's current delivery state, derived from its status history by precedence.

Meta delivers statuses out of order (a `sent` after a `read`); storing them as history and
deriving the state by rank, never by arrival, is what keeps a late `sent` from downgrading it.
"""

from collections.abc import Iterable

# Higher wins. `failed` is final whatever came before; an unknown status ranks lowest.
PRECEDENCE = {"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 5}


def current_status(statuses: Iterable[str]) -> str:
    """The winning status of a history ("" for none), independent of arrival order."""
    return max(statuses, key=lambda s: (PRECEDENCE.get(s, 0), s), default="")


def current_statuses(wamids: Iterable[str], channel_id: int) -> dict[str, str]:
    """The current status of each wamid on a channel, in one query."""
    from messaging.models import StatusEvent

    history: dict[str, list[str]] = {}
    rows = StatusEvent.objects.filter(channel_id=channel_id, wamid__in=list(wamids))
    for wamid, status in rows.values_list("wamid", "status"):
        history.setdefault(wamid, []).append(status)
    return {wamid: current_status(statuses) for wamid, statuses in history.items()}
