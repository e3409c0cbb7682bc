"""What the reconciliation page lists (bridge/reconciliation.py); the page itself, who sees it
and its retry buttons are in tests/bridge/test_journal.py."""

from bridge import dispatch
from bridge.models import InboundEmail, Notification, Outbound
from bridge.reconciliation import figures
from tests.bridge.conftest import text_body


def listed() -> dict:
    return figures(Notification.objects.all(), InboundEmail.objects.all(), Outbound.objects.all())


def test_it_lists_a_failed_staff_email_and_a_journal_copy_waiting(capture, route, smtp, settings):
    settings.BRIDGE_MAX_ATTEMPTS = 1
    smtp.refuse.extend(["451 4.3.0 mailbox unavailable", "452 4.2.2 journal over quota"])
    capture(text_body("hello", wamid="wamid.R1"))
    dispatch.run()
    shown = listed()
    assert [n.kind for n in shown["failed"]] == ["email"]
    assert [(n.kind, n.count) for n in shown["journal"]] == [("journal", 1)]
    assert shown["journal_total"] == 1
    assert shown["unplanned"] == 0


def test_it_lists_nothing_when_everything_went(capture, route, smtp):
    capture(text_body("hello", wamid="wamid.R2"))
    dispatch.run()
    shown = listed()
    assert [len(shown[k]) for k in ("journal", "staff", "failed", "replies", "sends")] == [0] * 5
