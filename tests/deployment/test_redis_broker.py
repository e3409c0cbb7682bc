"""Q_BROKER_URL=redis://… puts django-q2's queue on a Redis server (clientwindow/settings.py);
unset, the queue stays in PostgreSQL. Checked with a real redis-server and a real qcluster."""

import os
import subprocess
import sys

import pytest
import redis
from django_q.models import OrmQ, Task

from messaging.models import Wakeup
from tests.deployment.conftest import ROOT, wait_until

SHOW = "from django.conf import settings as s; q = s.Q_CLUSTER; print(q.get('orm'), q.get('redis'))"
WAKE = "import django; django.setup(); from messaging import inbox; inbox.wake_media_fetcher()"


def q_cluster(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CLIENTWINDOW_", "Q_"))}
    clean.update(env, CLIENTWINDOW_LOCAL="1", DJANGO_SETTINGS_MODULE="clientwindow.settings")
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {SHOW}"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )


def test_it_keeps_the_queue_in_postgresql_by_default():
    assert q_cluster().stdout.split() == ["default", "None"]


def test_it_puts_the_queue_on_redis_when_q_broker_url_names_one():
    shown = q_cluster(Q_BROKER_URL="redis://queue.internal:6379/2")
    assert shown.stdout.split() == ["None", "redis://queue.internal:6379/2"]


@pytest.mark.parametrize("url", ["amqp://guest:s3cret@rabbit/", "queue.internal:6379"])
def test_it_refuses_a_broker_it_does_not_know(url):
    refused = q_cluster(Q_BROKER_URL=url)
    assert refused.returncode != 0
    assert "Q_BROKER_URL must be redis://" in refused.stderr
    assert "s3cret" not in refused.stderr


def test_it_runs_a_woken_task_through_redis(committed, no_schedules_due, redis_server, make_node):
    """The wake-up of messaging/inbox.py, queued by one process and run by a qcluster: the
    task sits in Redis (PostgreSQL's queue table stays empty) until a worker takes it."""
    node = make_node("worker", Q_BROKER_URL=redis_server)
    subprocess.run([sys.executable, "-c", WAKE], cwd=node.home, env=node.env, check=True)
    queue = redis.Redis.from_url(redis_server)
    assert queue.llen("django_q:clientwindow:q") == 1
    assert not OrmQ.objects.exists()
    node.manage("qcluster")
    done = wait_until(
        lambda: Task.objects.filter(func="messaging.tasks.fetch_media").first(), 90, "the task"
    )
    assert done.success, done.result
    assert not Wakeup.objects.get(func="messaging.tasks.fetch_media").queued
    assert queue.llen("django_q:clientwindow:q") == 0
