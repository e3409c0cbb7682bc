"""gunicorn.conf.py: the web server's garbage collections happen between requests, not in them,
and none of the older generations falls behind CPython's own schedule.

The hooks are called here as gunicorn calls them (its loader reads the file); that every web
server `make run` and deploy/ start reads the file is checked on real gunicorn processes by
tests/deployment (Node.gunicorn waits for each worker's line from post_worker_init)."""

import gc
import logging
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from gunicorn.app.base import Application

CONF = Path(settings.BASE_DIR) / "gunicorn.conf.py"


class Loader(Application):  # type: ignore[misc]
    """gunicorn's own reading of a configuration file, without a command line."""

    def __init__(self) -> None:  # Application's reads sys.argv
        self.usage, self.prog, self.callable = None, None, None
        self.do_load_config()

    def load_config(self) -> None:
        self.load_config_from_file(str(CONF))

    def init(self, parser: Any, opts: Any, args: Any) -> None:
        return None

    def load(self) -> Any:
        raise NotImplementedError


class Cycle:
    """Garbage only a collection frees: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def hooks(caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    """The configuration as gunicorn loads it, after post_worker_init; the collector as it was
    afterwards (this process is the test suite's, not a worker)."""
    thresholds = gc.get_threshold()
    cfg = Loader().cfg
    worker = SimpleNamespace(log=logging.getLogger("gunicorn.error"))
    try:
        with caplog.at_level(logging.INFO, "gunicorn.error"):
            cfg.post_worker_init(worker)
        yield SimpleNamespace(cfg=cfg, worker=worker, log=caplog.text)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_the_application_is_frozen_and_a_request_rarely_reaches_a_collection(hooks):
    assert gc.get_freeze_count() > 1000
    assert "objects of the application frozen" in hooks.log
    young, middle, oldest = gc.get_threshold()
    assert young >= 20_000
    assert (middle, oldest) == (10, 10)  # CPython's own


def test_what_a_request_left_is_collected_once_it_has_been_answered(hooks):
    gc.collect()
    left = Cycle()
    alive = weakref.ref(left)
    del left
    # what a page allocates beyond what it frees (about 400 containers for a search page) and
    # more: CPython's default threshold (700) would have collected the cycle by now
    kept = [[i] for i in range(5_000)]
    assert alive() is not None
    hooks.cfg.post_request(hooks.worker, None, {}, None)
    assert alive() is None
    del kept


def generations(collect: Any, n: int) -> list[int]:
    """The generation of each of the first `n` collections `collect` causes, from a full one
    (fewer if a thousand calls a collection did not cause them)."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.collect()
    gc.callbacks.append(record)
    try:
        for _ in range(1000 * n):
            if len(seen) >= n:
                break
            collect()
    finally:
        gc.callbacks.remove(record)
    return seen[:n]


def test_the_older_generations_are_collected_on_cpythons_own_schedule(hooks):
    requests = 400
    between = generations(lambda: hooks.cfg.post_request(hooks.worker, None, {}, None), requests)

    # CPython's automatic collections, with the same thresholds for the older generations and
    # a young one that allocations reach quickly (what they allocate is kept, as what a
    # worker keeps for good reaches the oldest generation)
    young, middle, oldest = gc.get_threshold()
    kept: list[list[int]] = []
    gc.set_threshold(50, middle, oldest)
    try:
        automatic = generations(lambda: kept.append([]), requests)
    finally:
        gc.set_threshold(young, middle, oldest)
    assert between == automatic
    assert between.count(2) >= 2 and between.count(1) > between.count(2)
