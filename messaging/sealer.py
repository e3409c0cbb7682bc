"""The sealing process (`manage.py run_sequencer`): seals deliveries as they arrive, in a process
of its own, so that the archive never depends on the health of django-q2's workers.

Why a process of its own: django-q2's workers share one multiprocessing task queue whose lock a
worker killed at the wrong moment keeps for ever; every other worker then waits on it and
nothing queued runs again (issue 13 §4: three kill storms of three left thousands of
deliveries pending). Here there is no shared lock but PostgreSQL's: the sequencer's own
advisory lock (messaging/sequencer.py) serialises sealing, so any number of these processes
may run, one per node, and a killed one loses at most its open transaction.

The loop: LISTEN on `CHANNEL` (the webhook view NOTIFYs it, messaging/inbox.py), seal until
nothing is pending, then wait for a notification or `idle` seconds, whichever comes first (the
timer seals what a lost notification, or a delivery stored while this process was down, left).
Once a minute it also checks the backlog alarm, which must not wait for a wedged qcluster.
The listening connection is a dedicated autocommit psycopg connection; sealing goes through
Django's. When PostgreSQL goes away both are dropped and retried with a growing pause, and
sealing resumes by itself. SIGTERM and SIGINT let the batch in progress commit, then return.
"""

import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import psycopg
from django.db import connection
from django.db.utils import InterfaceError, OperationalError

from messaging.health import check_backlog
from messaging.inbox import SEALER_CHANNEL
from messaging.sequencer import BATCH, process_batch

logger = logging.getLogger(__name__)
CHANNEL = SEALER_CHANNEL
IDLE_SECONDS = 5.0
SLICE = 0.5  # the longest a stop request waits while the process is idle
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 15.0
BACKLOG_CHECK_SECONDS = 60.0  # the backlog alarm (messaging/health.py), two reads
# What "PostgreSQL is away" looks like, from either connection; anything else is a bug to crash on.
DATABASE_DOWN = (psycopg.OperationalError, psycopg.InterfaceError, OperationalError, InterfaceError)


class Stop:
    """Set by SIGTERM or SIGINT; read between batches and while waiting."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            logger.info("sealer: %s received, stopping", signal.Signals(signum).name)
        self.requested = True

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(SLICE, left))


def run(stop: Stop, idle: float = IDLE_SECONDS) -> int:
    """Seal until asked to stop; return how many deliveries were sealed."""
    sealed, pause = 0, BACKOFF_FIRST
    while not stop.requested:
        try:
            with listening() as listener:
                logger.info("sealer: listening on %s", CHANNEL)
                pause = BACKOFF_FIRST
                checked = 0.0
                while not stop.requested:
                    sealed += seal_pending(stop)
                    if time.monotonic() - checked >= BACKLOG_CHECK_SECONDS:
                        check_backlog()  # here too: its schedule is the qcluster's
                        checked = time.monotonic()
                    wait(listener, idle, stop)
        except DATABASE_DOWN as exc:
            logger.warning("sealer: database unavailable (%s); retry in %.1f s", exc, pause)
            with contextlib.suppress(Exception):
                connection.close()
            stop.sleep(pause)
            pause = min(pause * 2, BACKOFF_MAX)
    return sealed


def seal_pending(stop: Stop) -> int:
    """Seal batch after batch until none is pending (or a stop is requested between two)."""
    sealed = 0
    while not stop.requested:
        count = process_batch(BATCH)
        sealed += count
        if count == 0:
            break
    return sealed


@contextlib.contextmanager
def listening() -> Iterator[psycopg.Connection[Any]]:
    """A dedicated autocommit connection (Django's runs the sealing transactions) LISTENing."""
    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(name, None)
    with psycopg.connect(**params, autocommit=True, connect_timeout=10) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        yield listener


def wait(listener: psycopg.Connection[Any], idle: float, stop: Stop) -> None:
    """Until a notification, `idle` seconds, or a stop request; then swallow the notifications
    that queued meanwhile (one sealing round serves them all)."""
    deadline = time.monotonic() + idle
    while not stop.requested and (left := deadline - time.monotonic()) > 0:
        if any(True for _ in listener.notifies(timeout=min(SLICE, left), stop_after=1)):
            break
    for _ in listener.notifies(timeout=0):
        pass
