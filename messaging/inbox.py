"""Waking background tasks after something is committed. Every one of them also runs on a
schedule (archive/schedules.py), so a wake-up that cannot be queued only delays the work.
Sealing is woken differently: by a NOTIFY to the sealing processes (`wake_sequencer`).
The apps above wake their own tasks with `queue()`, registered in messaging/hooks.py.

Wake-ups are coalesced: a task is queued only if no wake-up of it is already waiting
(`messaging_wakeup.queued`), and the task clears that mark when it starts, before it reads
what there is to do. So however many batches are sealed a second, the queue holds at most one
waiting bridge run (which then handles everything sealed), not one per batch that drown the
workers: measured when sealing was a task too, a task per delivery left the ORM broker 3,600
tasks behind and notifications 40 s late
(tests/performance/test_bench_bridge.py). Whatever is committed after a task cleared the mark
queues the next run; whatever was committed before it, it sees.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from django.db import connection, transaction

logger = logging.getLogger(__name__)
Task = TypeVar("Task", bound=Callable[..., Any])
SEALER_CHANNEL = "clientwindow_deliveries"  # what messaging/sealer.py LISTENs on

_MARK = """
INSERT INTO messaging_wakeup AS w (func, queued) VALUES (%s, true)
ON CONFLICT (func) DO UPDATE SET queued = true WHERE NOT w.queued
RETURNING 1
"""


def queue(func: str, group: str) -> None:
    """Queue a django-q2 task unless a wake-up of it is already waiting; never raises."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_MARK, [func])
            if cursor.fetchone() is None:
                return  # one is waiting already: it will see what was just committed
            from django_q.tasks import async_task

            async_task(func, q_options={"group": group})
    except Exception:  # what woke it (a webhook's 200, a sealing) must not depend on the queue
        logger.exception("could not queue %s", func)


def woken(func: str) -> Callable[[Task], Task]:
    """For a task that `queue()` wakes: clear its mark first, so that anything committed from
    now on queues another run."""

    def decorate(task: Task) -> Task:
        @wraps(task)
        def run(*args: Any, **kwargs: Any) -> Any:
            with connection.cursor() as cursor:
                cursor.execute("UPDATE messaging_wakeup SET queued = false WHERE func = %s", [func])
            return task(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate


def wake_sequencer() -> None:
    """Wake the sealing processes (`manage.py run_sequencer`, messaging/sealer.py): a NOTIFY,
    which PostgreSQL delivers when the delivery's transaction commits (at once in autocommit).
    No django-q2 task: sealing must not depend on its workers (issue 13 §4), and one statement
    is cheaper than the wake-up mark and a queued task. Never raises: the delivery is stored
    already, and the sealers' timer and the every-minute sweep (archive/schedules.py) seal it
    if the notification is lost."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [SEALER_CHANNEL])
    except Exception:
        logger.exception("could not notify the sealers")


def wake_media_fetcher() -> None:
    queue("messaging.tasks.fetch_media", "media")


@contextmanager
def only_runner(lock: int) -> Iterator[bool]:
    """Whether this worker is the one running a task right now (a session advisory lock, tried,
    never waited for): a second worker returns at once instead of queueing behind the first,
    so that the two workers do different work."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock])
        (mine,) = cursor.fetchone()
    try:
        yield bool(mine)
    finally:
        if mine:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [lock])
