"""Each count the review benchmark's search shapes would run on a cached archive, beside the
planner's price of it (EXPLAIN's total cost): where review.search.COUNT_LATER_ABOVE_COST draws
its line (a count priced above it is asked for afterwards without being tried in the page).
docs/SCALE.md §7l has its figures.

    python -m tests.performance.archive_scale env 10M > /tmp/env.sh && . /tmp/env.sh
    CLIENTWINDOW_LOCAL=1 uv run --frozen python -m tests.performance.bench_counts [N]
    python -m tests.performance.archive_scale stop 10M

N queries a shape (20, as BENCH_REVIEW_QUERIES=20), every shape but the phrase (whose page
mostly takes its count from its spans) and relevance (which counts its ranked window). Each
count runs as the count asked for
afterwards does (COUNT_LATER_BUDGET_MS), whatever its price: a count that runs out of that
budget says so. Prints one line a count, then the counts by price band.
"""

import itertools
import os
import sys
import time
from types import SimpleNamespace
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientwindow.settings")
django.setup()

from messaging.models import Message  # noqa: E402
from review import search  # noqa: E402
from tests.performance import test_bench_review as review_bench  # noqa: E402

BANDS = (0.0, 7_000.0, 20_000.0, search.COUNT_LATER_ABOVE_COST, float("inf"))


def main(n: int) -> None:
    review_bench.QUERIES = n
    archive = SimpleNamespace(label="cached", messages=Message.objects.count(), build={})
    world = review_bench.open_world(archive)  # type: ignore[arg-type]
    rows: list[tuple[str, str, float, float, int | None]] = []
    for shape in review_bench.search_shapes(world):
        for params in shape.params[:n]:
            if params.get("sort") == "relevance" or search._PHRASE.search(params.get("q", "")):
                continue  # ranked pages count their window; phrases mostly count by their spans
            form = search.SearchForm(params)
            assert form.is_valid(), form.errors
            messages, how = search.matching(Message.objects.all(), form.cleaned_data)
            counted: Any = messages.order_by().values("id")[: search.COUNT_CAP + 1]
            price = search._planned_cost(counted)
            began = time.perf_counter()
            found = search._capped_count(messages, search.COUNT_LATER_BUDGET_MS, pairs=how.pairs)
            spent = (time.perf_counter() - began) * 1000
            rows.append((shape.name, params.get("q", ""), price, spent, found))
            print(  # noqa: T201
                f"{shape.name:34} {params.get('q', '')!s:28.28} price {price:9,.0f}"
                f"  {spent:8.1f} ms  counted {'past the budget' if found is None else found}"
            )
    print("\nprice band               counts  took (ms)        over the 50 ms budget")  # noqa: T201
    for low, high in itertools.pairwise(BANDS):
        band = [row for row in rows if low <= row[2] < high]
        if band:
            took = sorted(row[3] for row in band)
            over = sum(t > float(search.COUNT_BUDGET_MS) for t in took)
            print(  # noqa: T201
                f"{low:9,.0f} to {high:9,.0f}  {len(band):6}  {took[0]:6.1f} to {took[-1]:7.1f}"
                f"  {over}"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
