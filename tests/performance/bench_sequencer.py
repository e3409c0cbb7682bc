"""The sequencer process of the capture benchmarks: `process_deliveries()` in a loop.

    python -m tests.performance.bench_sequencer TARGET_SEALS DEADLINE_SECONDS

Runs messaging.sequencer.process_deliveries() (the function django-q2's seal_deliveries task
runs) until nothing is pending, sleeps 5 ms when idle, and stops once messaging_deliveryseal
holds TARGET_SEALS rows (or at the deadline). Prints one JSON line: deliveries it sealed, calls
that sealed something, seconds spent inside process_deliveries, idle polls, the wall-clock
time the first call that sealed something began, the time it saw the target reached, and its CPU.

With BENCH_SQL_TIMING=1 it also times every statement the ORM sends while sealing (a Django
execute wrapper; the ledger's COPY goes through the raw cursor and is not included) and reports
the statements that took longest, IN lists collapsed.
"""

import collections
import contextlib
import json
import os
import re
import sys
import time
from typing import Any

SQL_TIMING = os.environ.get("BENCH_SQL_TIMING", "") not in ("", "0")
TIMINGS: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])


def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        key = re.sub(r"%s(, %s)+", "%s, ...", " ".join(sql.split()))
        key = re.sub(r"\(%s, \.\.\.\)(, \(%s, \.\.\.\))+", "(%s, ...), ...", key)
        TIMINGS[key[:160]][0] += 1
        TIMINGS[key[:160]][1] += time.perf_counter() - started


def main() -> None:
    target, deadline = int(sys.argv[1]), time.time() + float(sys.argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientwindow.settings")
    import django

    django.setup()
    from django.db import connection

    from messaging.models import DeliverySeal
    from messaging.sequencer import process_deliveries

    sealed = calls = idle = 0
    busy = 0.0
    first = reached = None
    while time.time() < deadline:
        called, started = time.time(), time.perf_counter()
        wrap = connection.execute_wrapper(timed) if SQL_TIMING else contextlib.nullcontext()
        with wrap:
            count = process_deliveries()
        if count:
            first = first or called
            busy += time.perf_counter() - started
            sealed, calls = sealed + count, calls + 1
            continue
        if DeliverySeal.objects.count() >= target:
            reached = time.time()
            break
        idle += 1
        time.sleep(0.005)
    result = {
        "sealed": sealed,
        "calls": calls,
        "busy": busy,
        "idle_polls": idle,
        "first_sealed": first,
        "reached": reached,
        "cpu": time.process_time(),
        "sql": sorted(([k, *v] for k, v in TIMINGS.items()), key=lambda r: -r[2])[:12],
    }
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
