"""The sequencer process of the capture benchmarks: `process_deliveries()` in a loop.

    python -m tests.performance.bench_sequencer TARGET_SEALS DEADLINE_SECONDS

Runs messaging.sequencer.process_deliveries() (the function django-q2's seal_deliveries task
runs) until nothing is pending, sleeps 5 ms when idle, and stops once messaging_deliveryseal
holds TARGET_SEALS rows (or at the deadline). Prints one JSON line: deliveries it sealed, calls
that sealed something, seconds spent inside process_deliveries, idle polls, and the wall-clock
time it saw the target reached.
"""

import json
import os
import sys
import time


def main() -> None:
    target, deadline = int(sys.argv[1]), time.time() + float(sys.argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientwindow.settings")
    import django

    django.setup()
    from messaging.models import DeliverySeal
    from messaging.sequencer import process_deliveries

    sealed = calls = idle = 0
    busy = 0.0
    first = reached = None
    while time.time() < deadline:
        started = time.perf_counter()
        count = process_deliveries()
        if count:
            first = first or time.time()
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
    }
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
