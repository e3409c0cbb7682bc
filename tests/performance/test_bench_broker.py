"""django-q2's two brokers side by side: PostgreSQL (the ORM broker, the default) and Redis
(Q_BROKER_URL, clientwindow/settings.py), for deploy/README.md's "The task queue: PostgreSQL or
Redis".

Each run: one real `manage.py qcluster` (Q_WORKERS=2, Q_SAVE_LIMIT=0 so that every task is kept
and counted; no schedule due) on this session's test database, the broker named by the run, and
a real redis-server for the Redis run (tests/deployment/conftest.py). Once the cluster is up, a
separate process enqueues BENCH_BROKER_TASKS (2,000) trivial tasks (`math.floor`) as fast as it
can: what is measured is the queue, not the work. Printed: the enqueue rate, the rate from the
first enqueue to the last task recorded done, and PostgreSQL's transactions per second over
BENCH_BROKER_IDLE_SECONDS (10), before the cluster starts and with it started and idle (before
the tasks): the ORM broker's poll (Q_POLL 0.2) is the difference between the brokers' figures.
"""

import json
import os
import subprocess
import sys
import time

import pytest
from django_q.models import Task

from tests.conftest import TEST_DB, superuser_connect
from tests.deployment.conftest import (  # noqa: F401 (fixtures)
    make_node,
    no_schedules_due,
    redis_server,
    wait_until,
)
from tests.performance.conftest import Figure, rate, record, say, table

TASKS = int(os.environ.get("BENCH_BROKER_TASKS", "2000"))
IDLE = float(os.environ.get("BENCH_BROKER_IDLE_SECONDS", "10"))
ENQUEUE = """
import json, sys, time, django
django.setup()
from django_q.tasks import async_task
started = time.perf_counter()
for _ in range(int(sys.argv[1])):
    async_task("math.floor", 1.5, group="bench-broker")
print(json.dumps(time.perf_counter() - started))
"""
RESULTS: dict[str, list[str]] = {}


def transactions() -> int:
    with superuser_connect() as conn:
        query = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s"
        return int(conn.execute(query, [TEST_DB]).fetchone()[0])


def idle_transactions() -> float:
    """PostgreSQL's transactions per second over IDLE seconds (its statistics, per database)."""
    before = transactions()
    time.sleep(IDLE)
    return (transactions() - before) / IDLE


def done() -> int:
    return Task.objects.filter(group="bench-broker").count()


@pytest.mark.parametrize("broker", ["postgresql", "redis"])
def test_broker(broker, committed, request):
    request.getfixturevalue("no_schedules_due")  # the fixtures of tests/deployment, imported
    extra = {"Q_SAVE_LIMIT": "0", "Q_WORKERS": "2"}
    if broker == "redis":
        extra["Q_BROKER_URL"] = request.getfixturevalue("redis_server")
    node = request.getfixturevalue("make_node")("worker", **extra)
    Task.objects.filter(group="bench-broker").delete()
    without = idle_transactions()
    node.manage("qcluster")
    wait_until(lambda: "running." in node.log("qcluster"), 60, "the qcluster")
    time.sleep(3)  # its processes past their start
    idle = idle_transactions()

    started = time.perf_counter()
    enqueued = subprocess.run(
        [sys.executable, "-c", ENQUEUE, str(TASKS)],
        cwd=node.home,
        env=node.env,
        capture_output=True,
        text=True,
        check=True,
    )
    enqueue_seconds = json.loads(enqueued.stdout)
    wait_until(lambda: done() >= TASKS, 600, "the tasks")
    drained = time.perf_counter() - started
    assert Task.objects.filter(group="bench-broker", success=False).count() == 0

    RESULTS[broker] = [broker, rate(TASKS / enqueue_seconds), rate(TASKS / drained)]
    RESULTS[broker] += [f"{without:,.1f}/s", f"{idle:,.1f}/s"]
    record(Figure(f"broker {broker}: {TASKS} tasks enqueued to done", TASKS / drained, "tasks/s"))
    headers = ["broker", "enqueue", "enqueue to done", "xacts/s: no cluster", "idle cluster"]
    say()
    say(table(headers, list(RESULTS.values()), title=f"== django-q2 brokers, {TASKS} tasks"))
