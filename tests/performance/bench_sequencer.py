"""The sequencer process of the capture benchmarks: `process_deliveries()` in a loop, or the
real sealing process (`manage.py run_sequencer`) with measurements around it.

    python -m tests.performance.bench_sequencer TARGET_SEALS DEADLINE_SECONDS
    python -m tests.performance.bench_sequencer sealer

The second form runs `call_command("run_sequencer")` (what `make run` starts) until SIGTERM,
then prints one JSON line: its CPU, the statements it sent (BENCH_SQL_TIMING=1) and, with
BENCH_E2E_PROFILE=1, a cProfile of the process (its heaviest functions, inclusive and own).

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


def profile_rows(profile: Any, key: str, count: int) -> list[list[Any]]:
    """The `count` heaviest functions of a cProfile by `key` ("cumtime" or "tottime")."""
    import pstats

    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    rows = []
    for (path, line, name), (_, calls, own, inclusive, _) in stats.items():
        where = f"{name} ({path.rsplit('/', 1)[-1]}:{line})"
        rows.append([where, calls, own, inclusive])
    column = 3 if key == "cumtime" else 2
    return sorted(rows, key=lambda r: -r[column])[:count]


PHASES: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])


def time_phases() -> None:
    """Wrap the sealing phases in timers (BENCH_E2E_PHASES=1): where a batch's wall time goes,
    without a profiler's distortion of many small calls. Nesting is kept by the names."""
    from archive import ledger
    from messaging import hooks, sealer, sequencer, summaries
    from messaging.parsers import cloud_api

    def wrap(owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def timed_phase(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                PHASES[label][0] += 1
                PHASES[label][1] += time.perf_counter() - started

        setattr(owner, name, timed_phase)

    wrap(sealer, "process_batch", "process_batch")
    wrap(sequencer, "_seal_deliveries", "  _seal_deliveries")
    wrap(cloud_api, "parse", "    parse")
    wrap(sequencer, "_load_existing", "    _load_existing")
    wrap(sequencer, "_plan_delivery", "    _plan_delivery")
    wrap(sequencer, "_write", "    _write")
    wrap(ledger, "append", "      ledger.append")
    wrap(hooks, "sealed", "      hooks.sealed (retention)")
    wrap(summaries, "record", "      summaries.record")
    wrap(sealer, "check_backlog", "check_backlog")
    for model in sequencer.WRITE_ORDER:
        wrap(model._default_manager, "bulk_create", f"      {model.__name__} insert")


def sealer() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientwindow.settings")
    import cProfile

    import django

    django.setup()
    if os.environ.get("BENCH_E2E_PHASES") == "1":
        time_phases()
    from django.core.management import call_command
    from django.db import connection

    profile = cProfile.Profile() if os.environ.get("BENCH_E2E_PROFILE") == "1" else None
    wrap = connection.execute_wrapper(timed) if SQL_TIMING else contextlib.nullcontext()
    with wrap:
        if profile is not None:
            profile.enable()
        call_command("run_sequencer")
        if profile is not None:
            profile.disable()
    result: dict[str, Any] = {
        "cpu": time.process_time(),
        "sql": sorted(([k, *v] for k, v in TIMINGS.items()), key=lambda r: -r[2])[:15],
        "phases": [[k, *v] for k, v in PHASES.items()],
    }
    if profile is not None:
        result["inclusive"] = profile_rows(profile, "cumtime", 40)
        result["own"] = profile_rows(profile, "tottime", 20)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def main() -> None:
    if sys.argv[1] == "sealer":
        sealer()
        return
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
