"""gunicorn's settings for the portal's web server, read from the working directory by every
gunicorn that serves it: `make run` (scripts/localdev.py), deploy/systemd/clientwindow-web.service
and the benchmarks that serve the portal as a firm does.

The garbage collector runs between requests, not in them. By CPython's defaults a collection
starts whenever allocations outnumber releases by 700: a search page allocates about 400 more
than it frees before its end, so every other page stopped for a collection of its own live
objects (0.35 ms on average at 10k, in-process) and one in twenty for the middle generation's
(1.6 ms). One page in twenty is the 95th percentile the review targets read (docs/SCALE.md §7w).
Here a request rarely reaches a collection (a request that allocates far more, a long
transcript, still collects as it goes), and what it left is collected once its response has been
sent (gunicorn writes the response, then calls post_request), when most of it has been freed
already and the collection is short. The middle and oldest generations are collected on
CPython's own schedule, counted by those collections.

What the application holds once loaded (modules, settings, URL patterns) lives as long as the
worker: frozen, no collection looks at it again."""

import gc
from typing import Any

# Allocations, net of releases, that start a collection during a request (CPython's 700).
YOUNG_THRESHOLD = 20_000


def post_worker_init(worker: Any) -> None:
    """The worker has loaded the application: freeze what it holds and raise the threshold."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
    worker.log.info(
        "garbage collection between requests: %d objects of the application frozen",
        gc.get_freeze_count(),
    )


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """The response has been sent: collect what the request left."""
    gc.collect(due_generation())


def due_generation() -> int:
    """The generation an automatic collection would take now: the oldest whose count (the
    collections of the generation below since its own last one) is past its threshold, else the
    youngest. (CPython also waits for the oldest until a quarter of what it holds is new; with
    the application frozen, little is.)"""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    return max((g for g in (1, 2) if counts[g] > thresholds[g]), default=0)
