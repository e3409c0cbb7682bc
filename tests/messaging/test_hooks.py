"""The apps above messaging hook into sealing by registering (messaging/hooks.py): what they
registered runs in the sealing transaction, in order, and their wake-ups after it commits."""

import pytest

from messaging import hooks
from messaging.models import Wakeup
from messaging.sequencer import process_deliveries
from retention.models import RetentionRecord
from tests.messaging.conftest import fixture_bytes

pytestmark = pytest.mark.django_db


def test_it_runs_the_sealing_hooks_in_registration_order(monkeypatch):
    monkeypatch.setitem(hooks._registry, "sealed", [])
    calls = []
    hooks.on_sealed(lambda records, duplicates: calls.append(("first", records, duplicates)))
    hooks.on_sealed(lambda records, duplicates: calls.append(("second", records, duplicates)))
    hooks.sealed(["record"], ["duplicate"])
    assert calls == [("first", ["record"], ["duplicate"]), ("second", ["record"], ["duplicate"])]


def test_it_registers_a_hook_once(monkeypatch):
    monkeypatch.setitem(hooks._registry, "messages", [])
    wake = hooks.wake_on_messages(lambda: None)
    hooks.wake_on_messages(wake)
    assert hooks.registered("messages") == [wake]


def test_it_fixes_retention_and_wakes_the_apps_above_when_messages_are_sealed(
    post, channels_for, django_capture_on_commit_callbacks
):
    body = fixture_bytes("message-text-group__meta-docs-via-vaam-rs.json")
    channels_for(body)
    assert post(body).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert process_deliveries() == 1
    assert RetentionRecord.objects.filter(kind="message").exists()
    assert {w.func for w in Wakeup.objects.filter(queued=True)} == {
        "review.tasks.scan_new_messages",
        "bridge.tasks.run",
    }
