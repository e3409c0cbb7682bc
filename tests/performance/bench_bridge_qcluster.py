"""The worker of the bridge benchmark's what-if runs: `manage.py qcluster` with a bounded sequencer.

    python -m tests.performance.bench_bridge_qcluster LIMIT

messaging.tasks.seal_deliveries runs process_deliveries(), which loops until the inbox is empty:
under a steady 50 deliveries/s it never returns, and every worker that takes one of the per-
delivery wake-ups stays in it for as long as the load lasts. Here, in this process only (the
cluster's workers fork from it, django-q2 uses the "fork" context), the task is replaced by
process_deliveries(limit=LIMIT): one bounded pass per wake-up, each delivery still having its
own. Nothing else changes. Used by tests/performance/test_bench_bridge.py when
BENCH_BRIDGE_SEAL_LIMIT is set, to measure what that fix would give; never by the product.
"""

import os
import sys


def main() -> None:
    limit = int(sys.argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientwindow.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from messaging import tasks
    from messaging.sequencer import process_deliveries

    def seal_deliveries() -> int:
        return process_deliveries(limit=limit)

    tasks.seal_deliveries = seal_deliveries  # type: ignore[assignment]
    call_command("qcluster")


if __name__ == "__main__":
    main()
