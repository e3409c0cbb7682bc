"""Served pages of two or more checkouts, interleaved: the comparison the review benchmark cannot
make (docs/SCALE.md §7v-§7x: its run-to-run spread at 10M, ±2 ms at p95, is larger than a
change worth 0.5 ms).

Skipped unless BENCH_AB names the checkouts, as label:path pairs, for example (a worktree of
the code before, beside this one; the worktree needs `.venv` and `var` linked to this
checkout's, and those links removed before `git worktree remove`):

    git worktree add --detach /tmp/before <commit>
    ln -s "$PWD/.venv" /tmp/before/.venv && ln -s "$PWD/var" /tmp/before/var
    BENCH_AB=before:/tmp/before,now:. make bench   # or the pytest command of SCALE.md §7u

One gunicorn per checkout, started as the review benchmark starts its own (one sync worker,
DEBUG and the second factor off, its `gunicorn.conf.py` if it has one), on the same cached
archive (BENCH_AB_SIZE, 10k; durable, as `make run`), signed in as the same reviewer. Every
request goes to each server in turn, and the servers' order rotates from round to round, so
each server is first, in the middle and last equally often. The requests are the floor
(review:leave), the search page with a channel alone, a common word in a channel and a common
word since the first of the last month, with nothing before each request (a stream) or an idle
gap (BENCH_AB_GAPS, seconds, "0,0.1"). BENCH_AB_ROUNDS rounds (60). Prints p50 / p95 ms per
server, as the server timed each request (gunicorn's request time) and as this process did;
pause anything else on the machine (a build: kill -STOP, then -CONT).
"""

import contextlib
import os
import time
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from tests.performance.archive_scale import open_archive
from tests.performance.bench_review import percentile
from tests.performance.conftest import say, table
from tests.performance.test_bench_review import (
    LEAVE,
    forget_bench_writes,
    open_world,
    production_rendering,
    served_env,
    serving,
    session_cookie,
)

CHECKOUTS = [
    (label, Path(path).resolve())
    for label, _, path in (
        pair.partition(":") for pair in os.environ.get("BENCH_AB", "").split(",") if pair
    )
]
SIZE = os.environ.get("BENCH_AB_SIZE", "10k")
ROUNDS = int(os.environ.get("BENCH_AB_ROUNDS", "60"))
GAPS = [float(g) for g in os.environ.get("BENCH_AB_GAPS", "0,0.1").split(",")]

pytestmark = pytest.mark.skipif(
    len(CHECKOUTS) < 2, reason="BENCH_AB names no two checkouts (label:path,label:path)"
)


def test_served_interleaved(django_db_setup: None, django_db_blocker: Any) -> None:
    times: dict[tuple[float, str, str], list[float]] = {}  # the client's
    server_times: dict[tuple[float, str, str], list[float]] = {}  # the server's own
    durable = {"CLIENTWINDOW_THROWAWAY_DURABLE": "1"}
    with (
        django_db_blocker.unblock(),
        mock.patch.dict(os.environ, durable),
        open_archive(SIZE) as archive,
        archive.django(),
    ):
        client = Client()
        world = open_world(archive)
        client.force_login(world.user)
        env, cookie = served_env(archive), session_cookie(client)
        search = reverse("review:search")
        month = world.last_day.replace(day=1).isoformat()
        pages = {
            "floor": [f"{reverse('review:leave')}?{urlencode(LEAVE)}"],
            "channel only": [f"{search}?channel={c.pk}" for c in world.channels],
            '"the" in a channel': [f"{search}?q=the&channel={c.pk}" for c in world.channels],
            '"the" since a date': [f"{search}?q=the&date_from={month}"],
        }
        try:
            with (
                contextlib.ExitStack() as servers,
                production_rendering(),
                override_settings(MFA_REQUIRED="off"),
            ):
                ports = [
                    (label, servers.enter_context(serving(root, env, cookie)))
                    for label, root in CHECKOUTS
                ]
                for _, server in ports:  # each server's connection, caches and plans warmed
                    for url in (u for urls in pages.values() for u in urls):
                        for _ in range(5):
                            server.get(url)
                for r in range(ROUNDS):
                    order = ports[r % len(ports) :] + ports[: r % len(ports)]
                    for gap in GAPS:
                        for page, urls in pages.items():
                            for url in urls:
                                for label, server in order:
                                    if gap:
                                        time.sleep(gap)
                                    answer = server.get(url)
                                    times.setdefault((gap, page, label), []).append(answer.seconds)
                                    server_times.setdefault((gap, page, label), []).append(
                                        answer.server
                                    )
        finally:
            client.logout()
            connections.close_all()
            forget_bench_writes(archive)
    rows = []
    for gap in GAPS:
        for page in pages:
            cells = []
            for label, _ in CHECKOUTS:
                for measured in (server_times, times):
                    spent = measured[(gap, page, label)]
                    cells.append(
                        f"{percentile(spent, 50) * 1000:.2f} / {percentile(spent, 95) * 1000:.2f}"
                    )
            rows.append(
                [f"{'a stream' if not gap else f'idle {gap * 1000:.0f} ms'}, {page}", *cells]
            )
    say()
    say(
        table(
            [
                "before each request, page",
                *(
                    heading
                    for label, _ in CHECKOUTS
                    for heading in (f"{label} server p50 / p95 ms", "client")
                ),
            ],
            rows,
            title=f"== served, interleaved, {ROUNDS} rounds on the {SIZE} archive (server:"
            " gunicorn's request time, from its access log; client: from connecting to the last"
            " byte read)",
        )
    )
