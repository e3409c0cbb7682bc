"""The backlog alarm: deliveries waiting too long to be sealed, raised once per episode."""

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from messaging.health import check_backlog, ingestion_health, measure_backlog
from messaging.models import BacklogAlarm, Delivery, DeliverySeal, PendingDelivery
from messaging.sequencer import process_deliveries

pytestmark = pytest.mark.django_db

Clock = Callable[[float], AbstractContextManager[object]]


@pytest.fixture
def oldest() -> Delivery:
    """A pending delivery (no seal), with a body no log line may repeat."""
    Delivery.objects.create(body=b'{"text": "the client\'s secret"}')
    Delivery.objects.create(body=b"{}")
    return Delivery.objects.order_by("id").first()  # type: ignore[return-value]


@pytest.fixture
def minutes_after(oldest: Delivery) -> Clock:
    """The clock moved to so many minutes after the oldest delivery arrived."""
    return lambda minutes: time_machine.travel(
        oldest.received_at + timedelta(minutes=minutes), tick=False
    )


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="messaging.health")
    return caplog


def alarms(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]


def test_it_raises_no_alarm_before_the_threshold(minutes_after, errors):
    with minutes_after(4.9):
        assert check_backlog() is False
    assert alarms(errors) == []


def test_it_raises_no_alarm_without_pending_deliveries(errors):
    with time_machine.travel(timezone.now() + timedelta(days=1), tick=False):
        assert check_backlog() is False
    assert alarms(errors) == []


def test_it_raises_the_alarm_after_the_threshold_with_counts_and_ages_only(minutes_after, errors):
    with minutes_after(6):
        assert check_backlog() is True
    assert alarms(errors) == [
        "ingestion backlog: 2 deliveries waiting to be sealed, the oldest for 6 minutes"
        " (alarm after 5)"
    ]


def test_it_reads_the_threshold_from_settings(minutes_after, settings):
    settings.BACKLOG_ALARM_MINUTES = 10
    with minutes_after(6):
        assert check_backlog() is False


def test_it_logs_once_per_episode(minutes_after, errors):
    for minutes in (6, 7, 30):
        with minutes_after(minutes):
            assert check_backlog() is True
    assert len(alarms(errors)) == 1


def test_it_logs_again_when_a_new_episode_begins(minutes_after, errors):
    for minutes in (6, 7, 1, 8):  # the alarm, still, back under (the episode ends), again
        with minutes_after(minutes):
            check_backlog()
    assert len(alarms(errors)) == 2
    assert "ingestion backlog cleared" in errors.records[1].getMessage()


def test_it_leaves_an_episode_another_process_raised_unlogged(minutes_after, errors):
    BacklogAlarm.objects.create(pk=1, raised_at=timezone.now())
    with minutes_after(6):
        assert check_backlog() is True
    assert alarms(errors) == []


def test_it_is_checked_every_minute():
    schedule = Schedule.objects.get(name="backlog alarm")
    assert (schedule.func, schedule.minutes, schedule.repeats) == (
        "messaging.health.check_backlog",
        1,
        -1,
    )


def test_it_shows_administrators_the_alarm_on_the_ingestion_page(
    client, admin_user, minutes_after, errors
):
    client.force_login(admin_user)
    with minutes_after(7):
        page = client.get(reverse("ingestion")).content.decode()
    assert 'id="backlog-alarm"' in page
    assert "2 deliveries waiting to be sealed; the oldest has waited 7 minutes" in page
    assert len(alarms(errors)) == 1  # the page is one of the checks


def test_it_shows_no_alarm_on_the_ingestion_page_in_time(client, admin_user, minutes_after):
    client.force_login(admin_user)
    with minutes_after(2):
        page = client.get(reverse("ingestion")).content.decode()
    assert 'id="backlog-alarm"' not in page


def test_it_shows_administrators_the_alarm_on_the_home_page(client, admin_user, minutes_after):
    client.force_login(admin_user)
    with minutes_after(7):
        page = client.get(reverse("home")).content.decode()
    assert 'id="backlog-alarm"' in page
    assert "2 deliveries waiting to be sealed, the oldest for 7 minutes" in page


def test_it_shows_no_alarm_on_the_home_page_to_reviewers(client, reviewer, minutes_after):
    client.force_login(reviewer)
    with minutes_after(7):
        page = client.get(reverse("home")).content.decode()
    assert 'id="backlog-alarm"' not in page


# What is pending is read from the sequencer's queue (flat as the archive grows), not from an
# anti-join of every delivery with its seal; these say it still reports what is pending.


def test_it_reports_the_deliveries_that_arrived_after_the_last_sealing(oldest):
    assert process_deliveries() == 2
    assert measure_backlog().oldest_pending is None
    assert ingestion_health().pending == 0
    later = [Delivery.objects.create(body=b"{}") for _ in range(3)]
    backlog = measure_backlog()
    assert backlog.oldest_pending == later[0].received_at
    health = ingestion_health()
    assert (health.pending, health.sealed, health.oldest_pending) == (3, 2, later[0].received_at)


def test_it_reports_the_oldest_pending_in_the_order_the_sequencer_seals(oldest):
    first, *_ = Delivery.objects.order_by("id")
    assert measure_backlog().oldest_pending == first.received_at
    assert ingestion_health().pending == 2


def test_it_counts_a_queued_delivery_that_has_its_seal_as_sealed(oldest):
    """The seal is the truth: a queue row left beside one (a restore, a hand's INSERT) is only
    dropped by the sequencer, and is not a backlog."""
    process_deliveries()
    PendingDelivery.objects.create(delivery=oldest)
    assert DeliverySeal.objects.filter(delivery=oldest).exists()
    assert measure_backlog().oldest_pending is None
    assert ingestion_health().pending == 0


def test_it_raises_the_alarm_for_what_came_in_after_a_sealing(oldest, errors):
    process_deliveries()
    late = Delivery.objects.create(body=b"{}")
    with time_machine.travel(late.received_at + timedelta(minutes=6), tick=False):
        assert check_backlog() is True
    assert alarms(errors) == [
        "ingestion backlog: 1 deliveries waiting to be sealed, the oldest for 6 minutes"
        " (alarm after 5)"
    ]


def test_a_delivery_leaves_the_queue_only_with_its_seal(oldest):
    """The alarm and the sequencer both read the queue: a row deleted without its seal would
    hide a delivery from both, so PostgreSQL refuses it at commit, whoever deletes it."""
    process_deliveries()  # takes each row before it seals: checked at commit, as here
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    late = Delivery.objects.create(body=b"{}")
    with (
        pytest.raises(IntegrityError, match="left the queue without its seal"),
        transaction.atomic(),
    ):
        PendingDelivery.objects.filter(delivery=late).delete()
    assert measure_backlog().oldest_pending == late.received_at
