"""Wake-ups are coalesced: at most one waiting run of a task, however many commits want one
(messaging/inbox.py). Checked on django-q2's real ORM broker queue."""

import pytest
from django_q.models import OrmQ

from bridge import dispatch as bridge_dispatch
from bridge import tasks as bridge_tasks
from messaging import inbox
from messaging import tasks as messaging_tasks
from messaging.models import Wakeup
from review import tasks as review_tasks

pytestmark = pytest.mark.django_db


def waiting(func: str) -> int:
    return sum(1 for q in OrmQ.objects.all() if q.func() == func)


def test_many_wakeups_queue_one_run_until_it_starts():
    for _ in range(50):
        bridge_dispatch.wake()
    assert waiting("bridge.tasks.run") == 1
    assert Wakeup.objects.get(func="bridge.tasks.run").queued
    bridge_tasks.run()  # the run clears the mark before it looks for work
    assert not Wakeup.objects.get(func="bridge.tasks.run").queued
    bridge_dispatch.wake()
    bridge_dispatch.wake()
    assert waiting("bridge.tasks.run") == 2  # the one still in the table, and one new


def test_each_task_has_its_own_mark():
    bridge_dispatch.wake()
    review_tasks.wake()
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
    bridge_dispatch.wake()  # logged, never raised
    assert not Wakeup.objects.filter(func="bridge.tasks.run", queued=True).exists()
    monkeypatch.undo()
    bridge_dispatch.wake()
    assert waiting("bridge.tasks.run") == 1


def test_a_second_sealing_run_returns_at_once():
    """Two workers never both seal: the one that finds the run lock taken returns without
    sealing (the run holding it queues whatever it leaves, below)."""
    from django.db import connection

    from messaging.models import Delivery, DeliverySeal
    from tests.conftest import TEST_DB, superuser_connect

    Delivery.objects.create(body=b'{"object": "whatsapp_business_account", "entry": []}')
    dbname = connection.settings_dict["NAME"] or TEST_DB
    with superuser_connect(dbname) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [messaging_tasks.RUN_LOCK])
        assert messaging_tasks.seal_deliveries() == 0
        assert not DeliverySeal.objects.exists()
        other.execute("SELECT pg_advisory_unlock(%s)", [messaging_tasks.RUN_LOCK])
    assert messaging_tasks.seal_deliveries() == 1
    assert DeliverySeal.objects.count() == 1


def test_a_run_out_of_time_queues_the_next(monkeypatch):
    from messaging.models import Delivery, DeliverySeal

    Delivery.objects.create(body=b'{"object": "whatsapp_business_account", "entry": []}')
    monkeypatch.setattr(messaging_tasks, "RUN_SECONDS", 0.0)  # its second is already over
    assert messaging_tasks.seal_deliveries() == 0
    assert not DeliverySeal.objects.exists()
    assert Wakeup.objects.get(func="messaging.tasks.seal_deliveries").queued
    assert waiting("messaging.tasks.seal_deliveries") == 1
    monkeypatch.undo()
    assert messaging_tasks.seal_deliveries() == 1  # nothing left: nothing queued
    assert not Wakeup.objects.get(func="messaging.tasks.seal_deliveries").queued


def test_the_bridge_checks_name_what_is_missing(settings):
    from bridge import checks

    settings.EMAIL_BACKEND = "bridge.mail.UnconfiguredBackend"
    settings.PORTAL_URL = ""
    assert [w.id for w in checks.email_configured()] == ["bridge.W001"]
    assert [w.id for w in checks.portal_url()] == ["bridge.W002"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.PORTAL_URL = "https://archive.bank.example"
    assert checks.email_configured() == [] and checks.portal_url() == []
