"""Killing the sequencer at any moment loses nothing and doubles nothing."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import OperationalError, connection

from archive.models import LedgerEntry
from archive.verify import verify_ledger
from messaging.models import Channel, Delivery, DeliverySeal, Message
from messaging.sequencer import process_deliveries
from tests.messaging.conftest import fixture_bytes

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = fixture_bytes("message-text-group__meta-docs-via-vaam-rs.json")
WAMID = b"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="


def deliveries(count: int) -> None:
    """`count` deliveries of distinct messages, plus every fifth one delivered twice."""
    Channel.objects.get_or_create(phone_number_id="106540352242922", defaults={"name": "Desk"})
    bodies = [TEMPLATE.replace(WAMID, f"wamid.crash-{n}".encode()) for n in range(count)]
    bodies += bodies[::5]
    Delivery.objects.bulk_create(Delivery(body=body, headers={}) for body in bodies)


@pytest.mark.django_db
def test_it_rolls_back_a_batch_that_fails_at_its_last_write_and_seals_it_later(monkeypatch):
    """The seals are written last, after the ledger entries and every other record."""
    deliveries(3)

    def power_cut(rows):
        raise OperationalError("server closed the connection unexpectedly")  # no SQLSTATE

    with monkeypatch.context() as patch:
        patch.setattr(DeliverySeal._default_manager, "bulk_create", power_cut)
        with pytest.raises(OperationalError):
            process_deliveries()
    assert (Message.objects.count(), LedgerEntry.objects.count()) == (0, 0)
    assert process_deliveries() == 4
    assert Message.objects.count() == 3
    assert verify_ledger().intact


def sequencer_process() -> subprocess.Popen[bytes]:
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + database["NAME"],
        "CLIENTWINDOW_LOCAL": "1",
    }
    code = (
        "import django; django.setup();"
        "from messaging import sequencer; sequencer.BATCH = 7; sequencer.process_deliveries()"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)


def test_it_survives_kill_9_in_the_middle_of_sealing(committed):
    deliveries(400)
    worker = sequencer_process()
    deadline = time.monotonic() + 60
    while DeliverySeal.objects.count() < 50 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    sealed_before = DeliverySeal.objects.count()
    assert 0 < sealed_before < 480, "the kill must land mid-way to prove anything"
    process_deliveries()
    assert DeliverySeal.objects.count() == 480
    assert Message.objects.count() == 400
    assert sum(DeliverySeal.objects.values_list("duplicates", flat=True)) == 80
    assert verify_ledger().intact


def test_it_serialises_concurrent_sequencers(committed):
    deliveries(100)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            process_deliveries()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (DeliverySeal.objects.count(), Message.objects.count()) == (120, 100)
    assert verify_ledger().intact
