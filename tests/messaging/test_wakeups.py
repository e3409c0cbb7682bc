"""Wake-ups are coalesced: at most one waiting run of a task, however many commits want one
(messaging/inbox.py). Checked on django-q2's real ORM broker queue."""

import pytest
from django_q.models import OrmQ

from bridge import tasks as bridge_tasks
from messaging import inbox
from messaging import tasks as messaging_tasks
from messaging.models import Wakeup

pytestmark = pytest.mark.django_db


def waiting(func: str) -> int:
    return sum(1 for q in OrmQ.objects.all() if q.func() == func)


def test_many_wakeups_queue_one_run_until_it_starts():
    for _ in range(50):
        inbox.wake_bridge()
    assert waiting("bridge.tasks.run") == 1
    assert Wakeup.objects.get(func="bridge.tasks.run").queued
    bridge_tasks.run()  # the run clears the mark before it looks for work
    assert not Wakeup.objects.get(func="bridge.tasks.run").queued
    inbox.wake_bridge()
    inbox.wake_bridge()
    assert waiting("bridge.tasks.run") == 2  # the one still in the table, and one new


def test_each_task_has_its_own_mark():
    inbox.wake_bridge()
    inbox.wake_reviewers()
    inbox.wake_media_fetcher()
    inbox.queue("messaging.tasks.seal_deliveries", "sequencer")
    assert {w.func for w in Wakeup.objects.filter(queued=True)} == {
        "bridge.tasks.run",
        "review.tasks.scan_new_messages",
        "messaging.tasks.fetch_media",
        "messaging.tasks.seal_deliveries",
    }
    messaging_tasks.seal_deliveries()
    assert not Wakeup.objects.get(func="messaging.tasks.seal_deliveries").queued
    assert Wakeup.objects.get(func="bridge.tasks.run").queued


def test_a_failed_enqueue_leaves_no_mark(monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("the broker is down")

    monkeypatch.setattr("django_q.tasks.async_task", broken)
    inbox.wake_bridge()  # logged, never raised
    assert not Wakeup.objects.filter(func="bridge.tasks.run", queued=True).exists()
    monkeypatch.undo()
    inbox.wake_bridge()
    assert waiting("bridge.tasks.run") == 1
