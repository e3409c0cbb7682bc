"""Each sampled phrase of the review benchmark through review.search.search() on a cached
archive, one line per phrase (best of two), slowest first, then the statements of the four
slowest: where a phrase's time goes, which the shape's p95 in test_bench_review.py does not say.

    python -m tests.performance.archive_scale env 10M > /tmp/env.sh && . /tmp/env.sh
    CLIENTWINDOW_LOCAL=1 uv run --frozen python -m tests.performance.bench_phrases [N]
    python -m tests.performance.archive_scale stop 10M

N phrases (20, as BENCH_REVIEW_QUERIES=20), each with the channel the benchmark gives it, from
the archive BENCH_PHRASE_ARCHIVE names (10M: its size, for sampled_phrases).
BENCH_PHRASE_FIRST_SPAN_DAYS tries another first span of time (search.PHRASE_FIRST_SPAN),
BENCH_PHRASE_WHOLE_BELOW another bound for reading a phrase in one statement
(search.PHRASE_WHOLE_BELOW), BENCH_PHRASE_CHECK_OVER_BITMAP another cost ratio for reading the
rest of it in one after a first span (search.PHRASE_CHECK_OVER_BITMAP),
BENCH_PHRASE_SHORT_OVER_LONG another bound for reading a short word from the index
(search.PHRASE_SHORT_OVER_LONG), BENCH_PHRASE_WALK_ABOVE another bound for walking first
(search.PHRASE_WALK_ABOVE), BENCH_PHRASE_SHORT_MOST another bound for reading a common short
word with the long ones when the phrase is then rare (search.PHRASE_SHORT_MOST; 0: never).
BENCH_PHRASE_API=100 times the API's first call instead (api.search.ordered_ids with that
limit: the ids of a /api/v1/search/ page, without its hits).
docs/SCALE.md §7k has its figures.
"""

import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientwindow.settings")
django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from api.search import ordered_ids  # noqa: E402
from messaging.models import Channel, Message  # noqa: E402
from review import search  # noqa: E402
from tests.performance.archive_scale import size_of  # noqa: E402
from tests.performance.test_bench_review import sampled_phrases  # noqa: E402

# BENCH_PHRASE_<key>: the review.search constant it sets for the run, and the value it reads.
OVERRIDES: dict[str, Callable[[str], Any]] = {
    "FIRST_SPAN_DAYS": lambda days: ("PHRASE_FIRST_SPAN", timedelta(days=float(days))),
    "WHOLE_BELOW": lambda rows: ("PHRASE_WHOLE_BELOW", int(rows)),
    "CHECK_OVER_BITMAP": lambda ratio: ("PHRASE_CHECK_OVER_BITMAP", float(ratio)),
    "SHORT_OVER_LONG": lambda ratio: ("PHRASE_SHORT_OVER_LONG", float(ratio)),
    "WALK_ABOVE": lambda rows: ("PHRASE_WALK_ABOVE", int(rows)),
    "SHORT_MOST": lambda rows: ("PHRASE_SHORT_MOST", int(rows)),
}


def main(n: int) -> None:
    for name, read in OVERRIDES.items():
        if value := os.environ.get(f"BENCH_PHRASE_{name}"):
            setattr(search, *read(value))
    if limit := int(os.environ.get("BENCH_PHRASE_API", "0")):
        api_calls(n, limit)
        return
    rows: list[tuple[float, dict[str, str], Any]] = []
    for params, form in phrase_searches(n):
        best: tuple[float, list[tuple[float, str]], search.Results] | None = None
        for _ in range(2):
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                results = search.search(Message.objects.all(), form.cleaned_data)
                spent = time.perf_counter() - began
            if best is None or spent < best[0]:
                statements = [(float(q["time"]), q["sql"]) for q in captured.captured_queries]
                best = (spent, statements, results)
        assert best is not None
        rows.append((best[0], params, best))
    rows.sort(key=lambda row: -row[0])
    for spent, params, (_, _, results) in rows:
        pairs = search.phrase_pairs(params["q"]) is not None
        print(  # noqa: T201
            f"{spent * 1000:8.1f} ms  pairs={pairs!s:5}  total={results.total}"
            f" counting={results.counting}  {params}"
        )
    for spent, params, (_, statements, _) in rows[:4]:
        print(f"== {params} {spent * 1000:.1f} ms")  # noqa: T201
        for seconds, sql in statements:
            print(f"   {seconds * 1000:7.1f}  {sql[:150]}")  # noqa: T201


def phrase_searches(n: int) -> list[tuple[dict[str, str], search.SearchForm]]:
    """The benchmark's first `n` phrase searches: each sampled phrase with the channel the
    review benchmark gives it, and its validated form."""
    phrases = sampled_phrases(size_of(os.environ.get("BENCH_PHRASE_ARCHIVE", "10M"))[1])
    channels = [str(pk) for pk in Channel.objects.order_by("pk").values_list("pk", flat=True)]
    searches = []
    for i in range(n):
        a, b = phrases[i % len(phrases)]
        params = {"q": f'"{a} {b}"', "channel": channels[i % len(channels)]}
        form = search.SearchForm(params)
        assert form.is_valid(), form.errors
        searches.append((params, form))
    return searches


def api_calls(n: int, limit: int) -> None:
    """The API's first call for each phrase (best of two), slowest first: docs/SCALE.md §7l."""
    rows: list[tuple[float, str, int]] = []
    for _, form in phrase_searches(n):
        best, found = float("inf"), 0
        for _ in range(2):
            began = time.perf_counter()
            ids, _ = ordered_ids(Message.objects.all(), form.cleaned_data, "", limit)
            best, found = min(best, time.perf_counter() - began), len(ids)
        rows.append((best, form.cleaned_data["q"], found))
    for spent, q, found in sorted(rows, reverse=True):
        print(f"{spent * 1000:8.1f} ms  {found:4} ids  {q}")  # noqa: T201
    print(f"summed {sum(r[0] for r in rows) * 1000:,.1f} ms")  # noqa: T201


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
