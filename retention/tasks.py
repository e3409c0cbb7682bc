"""django-q2 entry points (scheduled in archive/schedules.py)."""

from messaging import inbox
from retention import disposition, holds, object_lock


def apply_retention() -> str:
    """The daily disposition: plan what is due; it runs at once unless it needs approval."""
    planned = disposition.plan()
    if planned is None:
        disposition.delete_pending_media()
        return "nothing due"
    return f"disposition {planned.pk}: {planned.get_state_display()}, {planned.disposed} disposed"


def run_disposition(pk: int) -> str:
    done = disposition.run(pk)
    return f"disposition {pk}: {done.get_state_display()}, {done.disposed} disposed"


def refresh_holds() -> int:
    return holds.refresh_active()


@inbox.woken(object_lock.TASK)
def reconcile_object_locks() -> str:
    """Every minute and when woken: the records bucket's locks in line with the records."""
    return object_lock.reconcile().summary()
