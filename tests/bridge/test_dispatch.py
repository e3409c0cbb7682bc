"""From sealed messages to staff notifications (bridge/dispatch.py), through a real SMTP server:
recipients, bursts, routes, retries, and two workers at once."""

import contextlib
import importlib
import re
import threading
from datetime import timedelta
from email.utils import getaddresses, parseaddr

import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bridge import dispatch, mail, outbound
from bridge.models import BridgeCursor, Notification, NotificationMessage, Route
from bridge.tokens import reply_address
from messaging.models import Channel, Message
from messaging.sequencer import process_deliveries
from tests.bridge.conftest import PNID, TOKEN, free_port, text_body
from tests.bridge.staff_emails import (
    CLIENT_NAME,
    JOURNAL,
    OTHER,
    STAFF,
    echo_body,
    html,
    journal_mail,
    plain,
    staff_mail,
    wamid,
)

# --- recipients --------------------------------------------------------------------------------


def test_recipients_are_the_route_addresses_and_its_users_once_each(capture, route, smtp):
    users = [
        User.objects.create_user("rm", email="RM@bank.example"),  # already listed, other case
        User.objects.create_user("pa", email="pa@bank.example"),
        User.objects.create_user("gone", email="gone@bank.example", is_active=False),
        User.objects.create_user("nomail", email=""),
    ]
    route.users.set(users)
    capture(text_body("hi", wamid=wamid()))
    dispatch.run()
    (received,) = staff_mail(smtp)
    assert received.rcpt_tos == [*STAFF, "pa@bank.example"]
    assert [a for _, a in getaddresses([received.message["To"]])] == received.rcpt_tos


def test_a_route_of_users_only_emails_them(capture, channel, smtp):
    route = Route.objects.create(channel=channel)
    route.users.set([User.objects.create_user("rm", email="rm@bank.example")])
    capture(text_body("hi", wamid=wamid()))
    dispatch.run()
    (received,) = smtp.received
    assert received.rcpt_tos == ["rm@bank.example"]


def test_a_route_without_recipients_sends_no_email(capture, channel, smtp):
    Route.objects.create(channel=channel, journal_address=JOURNAL)
    capture(text_body("hi", wamid=wamid()))
    dispatch.run()
    assert staff_mail(smtp) == []
    assert not Notification.objects.exclude(kind="journal").exists()
    assert len(journal_mail(smtp)) == 1


def test_recipients_are_read_when_the_email_is_sent(capture, route, smtp):
    capture(text_body("hi", wamid=wamid()))
    dispatch.plan()
    Route.objects.filter(pk=route.pk).update(email_recipients=["new@bank.example"])
    dispatch.send_due()
    (received,) = staff_mail(smtp)
    assert received.rcpt_tos == ["new@bank.example"]


def test_a_group_email_names_the_group_and_each_member(capture, route, smtp):
    group = {"group_id": "G-Family-Office", "type": "text"}
    conversation = capture(
        text_body("", wamid=wamid(), extra={**group, "text": {"body": "from Jane"}}),
        text_body(
            "",
            wamid=wamid(),
            sender=OTHER,
            name="Omar Other",
            extra={**group, "text": {"body": "from Omar"}},
        ),
    )
    dispatch.run()
    (received,) = staff_mail(smtp)
    message = received.message
    assert parseaddr(message["From"])[0] == "WhatsApp group G-Family-Office via ClientWindow"
    assert message["Subject"] == "WhatsApp: WhatsApp group G-Family-Office"
    assert message["Reply-To"] == reply_address(conversation.pk)
    text = plain(message)
    assert "  Jane Client\nfrom Jane" in text
    assert "  Omar Other\nfrom Omar" in text


def test_a_history_import_is_journaled_but_not_mailed_to_staff(capture, route, smtp):
    from tests.messaging.conftest import fixture_bytes

    capture(fixture_bytes("history-sync-threads-coexistence__meta-docs-via-vaam-rs.json"))
    assert Message.objects.filter(source="history", direction="in").exists()
    dispatch.run()
    assert len(journal_mail(smtp)) == Message.objects.count()
    assert staff_mail(smtp) == []


# --- bursts ------------------------------------------------------------------------------------


def test_a_burst_sealed_before_the_bridge_runs_is_one_email_in_order(capture, route, smtp):
    texts = ["one: are you there?", "two: about the bond", "three: call me"]
    capture(
        *(text_body(t, wamid=wamid(), timestamp=1_760_000_000 + n) for n, t in enumerate(texts))
    )
    capture(text_body("four: thanks", wamid=wamid(), timestamp=1_760_000_010))
    dispatch.run()
    (received,) = staff_mail(smtp)
    text, body = plain(received.message), html(received.message)
    positions = [text.index(t) for t in [*texts, "four: thanks"]]
    assert positions == sorted(positions)
    positions = [body.index(t) for t in [*texts, "four: thanks"]]
    assert positions == sorted(positions)
    notification = Notification.objects.get(kind="email")
    assert NotificationMessage.objects.filter(notification=notification).count() == 4
    assert len(journal_mail(smtp)) == 4  # the journal is one copy per message


def test_a_later_message_is_a_second_email_in_the_same_thread(capture, route, smtp):
    conversation = capture(text_body("first", wamid=wamid()))
    dispatch.run()
    capture(text_body("second", wamid=wamid()))
    dispatch.run()
    first, second = (r.message for r in staff_mail(smtp))
    assert "first" in plain(first) and "second" not in plain(first)
    assert "second" in plain(second) and "first" not in plain(second)
    assert first["References"] == second["References"] == mail.thread_root(conversation)
    assert first["Message-ID"] != second["Message-ID"]
    assert Notification.objects.filter(kind="email", state="sent").count() == 2


def test_burst_seconds_hold_an_email_back_to_gather_more(capture, route, smtp, settings):
    settings.BRIDGE_BURST_SECONDS = 60
    capture(text_body("first", wamid=wamid()))
    dispatch.run()
    assert staff_mail(smtp) == []
    assert len(journal_mail(smtp)) == 1  # the journal does not wait
    capture(text_body("second", wamid=wamid()))
    dispatch.run()
    assert staff_mail(smtp) == []
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        dispatch.run()
    (received,) = staff_mail(smtp)
    assert "first" in plain(received.message) and "second" in plain(received.message)


def test_a_message_during_a_retry_is_not_added_to_the_retried_email(capture, route, smtp):
    smtp.refuse.append("451 4.3.0 try later")
    capture(text_body("first", wamid=wamid()))
    dispatch.run()
    assert staff_mail(smtp) == []
    capture(text_body("second", wamid=wamid()))
    dispatch.run()
    (received,) = staff_mail(smtp)
    assert "second" in plain(received.message) and "first" not in plain(received.message)
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        dispatch.run()
    texts = [plain(r.message) for r in staff_mail(smtp)]
    assert len(texts) == 2 and "first" in texts[1] and "second" not in texts[1]


def test_messages_of_two_clients_are_two_emails(capture, route, smtp):
    capture(
        text_body("from Jane", wamid=wamid()),
        text_body("from Omar", wamid=wamid(), sender=OTHER, name="Omar Other"),
    )
    dispatch.run()
    received = [r.message for r in staff_mail(smtp)]
    assert sorted(m["Subject"] for m in received) == [
        f"WhatsApp: {CLIENT_NAME}",
        f"WhatsApp: Omar Other (+{OTHER})",
    ]
    for message in received:
        mine = "Jane" in message["Subject"]
        assert ("from Jane" in plain(message)) is mine
        assert ("from Omar" in plain(message)) is not mine


# --- routes ------------------------------------------------------------------------------------


def test_a_conversation_route_replaces_the_channel_route(capture, route, channel, smtp):
    conversation = capture(text_body("first", wamid=wamid()))
    Route.objects.create(
        channel=channel, conversation=conversation, email_recipients=["assigned@bank.example"]
    )
    capture(text_body("second", wamid=wamid()))
    capture(text_body("from Omar", wamid=wamid(), sender=OTHER, name="Omar Other"))
    dispatch.run()
    by_rcpt = {tuple(r.rcpt_tos): r.message for r in staff_mail(smtp)}
    assert set(by_rcpt) == {("assigned@bank.example",), tuple(STAFF)}
    assigned = plain(by_rcpt["assigned@bank.example",])
    assert "first" in assigned and "second" in assigned and "Omar" not in assigned
    desk = plain(by_rcpt[tuple(STAFF)])
    assert "from Omar" in desk and "first" not in desk
    # the channel route's journal still gets the conversation's messages
    assert len(journal_mail(smtp)) == 3


def test_an_inactive_route_notifies_nobody(capture, route, smtp):
    Route.objects.filter(pk=route.pk).update(active=False)
    capture(text_body("hello?", wamid=wamid()))
    assert dispatch.run() == 0
    assert smtp.received == []
    assert not Notification.objects.exists()


def test_a_route_deactivated_before_its_email_goes_out_notifies_nobody(
    capture, route, smtp, settings
):
    settings.BRIDGE_BURST_SECONDS = 60
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    Route.objects.filter(pk=route.pk).update(active=False)
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        dispatch.run()
    assert staff_mail(smtp) == []


def test_an_inactive_conversation_route_falls_back_to_the_channel_route(
    capture, route, channel, smtp
):
    conversation = capture(text_body("first", wamid=wamid()))
    Route.objects.create(
        channel=channel,
        conversation=conversation,
        email_recipients=["assigned@bank.example"],
        active=False,
    )
    capture(text_body("second", wamid=wamid()))
    dispatch.run()
    (received,) = staff_mail(smtp)
    assert received.rcpt_tos == STAFF


def test_a_route_of_another_channel_does_not_hear_this_one(capture, channel, smtp):
    other = Channel.objects.create(name="Other desk", phone_number_id="999", access_token=TOKEN)
    Route.objects.create(channel=other, email_recipients=STAFF, journal_address=JOURNAL)
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    assert smtp.received == []


def test_outbound_messages_are_journaled_but_never_notified(capture, route, smtp):
    capture(text_body("client asks", wamid=wamid()))
    dispatch.run()
    smtp.received.clear()
    capture(echo_body("firm answers from the app", wamid=wamid()))
    assert Message.objects.filter(direction="out").count() == 1
    dispatch.run()
    assert staff_mail(smtp) == []
    (journal,) = journal_mail(smtp)
    assert "firm answers from the app" in plain(journal.message)
    assert not Notification.objects.filter(kind="email", messages__direction="out").exists()


def test_a_message_sent_through_the_bridge_is_journaled_not_notified(capture, route, smtp, meta):
    conversation = capture(text_body("client asks", wamid=wamid()))
    dispatch.run()
    smtp.received.clear()
    (sent,) = outbound.send(
        conversation, [outbound.Text("Sold.")], outbound.Author("portal", None, "rm@bank.example")
    )
    assert sent.state == "sent"
    dispatch.run()
    assert staff_mail(smtp) == []
    (journal,) = journal_mail(smtp)
    assert "Sold." in plain(journal.message)


def test_messages_sealed_while_no_route_existed_are_never_notified(capture, channel, smtp):
    capture(text_body("before the route", wamid=wamid()))
    dispatch.run()
    Route.objects.create(channel=channel, email_recipients=STAFF, journal_address=JOURNAL)
    dispatch.run()
    assert smtp.received == []
    capture(text_body("after the route", wamid=wamid()))
    dispatch.run()
    (received,) = staff_mail(smtp)
    assert "after the route" in plain(received.message)
    assert "before the route" not in plain(received.message)
    assert len(journal_mail(smtp)) == 1


def test_without_a_route_the_planner_moves_past_messages_without_reading_them(
    capture, channel, smtp
):
    """A worker meeting an archive the bridge never read (a restore, an upgrade) planned it
    row by row, 1,000 whole messages a transaction, with no route to plan them for."""
    capture(text_body("no route yet", wamid=wamid()), text_body("nor here", wamid=wamid()))
    Route.objects.create(channel=channel, email_recipients=STAFF, active=False)
    with CaptureQueriesContext(connection) as queries:
        assert dispatch.plan() == 0
    assert [q for q in queries.captured_queries if '"messaging_message"' in q["sql"]] == []
    head = Message.objects.order_by("-entry_id").first().entry_id
    assert BridgeCursor.objects.get().planned_through >= head


def test_the_planner_reads_of_a_message_only_what_it_plans_with(capture, route, smtp):
    capture(text_body("hello", wamid=wamid()))
    with CaptureQueriesContext(connection) as queries:
        assert dispatch.plan() == 1
    (read,) = [q["sql"] for q in queries.captured_queries if 'FROM "messaging_message"' in q["sql"]]
    assert '"messaging_message"."direction"' in read
    for column in ("text", "search", "payload"):
        assert f'"messaging_message"."{column}"' not in read


def test_install_starts_the_cursor_at_the_ledger_head(capture, channel, smtp):
    """The migration that installs the bridge starts it at the head: an archive that already
    holds messages does not mail its whole history to staff and the journal."""
    capture(text_body("years ago", wamid=wamid()), text_body("last week", wamid=wamid()))
    BridgeCursor.objects.all().delete()
    migration = importlib.import_module("bridge.migrations.0002_retention")
    with connection.cursor() as cursor:
        cursor.execute(migration.START_AT_HEAD)
    head = Message.objects.order_by("-entry_id").first().entry_id
    assert BridgeCursor.objects.get().planned_through >= head
    Route.objects.create(channel=channel, email_recipients=STAFF, journal_address=JOURNAL)
    assert dispatch.plan() == 0
    dispatch.send_due()
    assert smtp.received == []
    capture(text_body("today", wamid=wamid()))
    assert dispatch.plan() == 1


def test_the_planner_reads_each_message_once(capture, route, smtp):
    capture(text_body("once", wamid=wamid()))
    assert dispatch.plan() == 1
    assert dispatch.plan() == 0
    dispatch.send_due()
    dispatch.run()
    assert len(staff_mail(smtp)) == 1 and len(journal_mail(smtp)) == 1


# --- retries -----------------------------------------------------------------------------------


def test_a_temporary_refusal_is_retried_with_backoff(capture, route, smtp):
    smtp.refuse.append("451 4.3.0 try later")
    capture(text_body("hello", wamid=wamid()))
    before = timezone.now()
    dispatch.run()
    email = Notification.objects.get(kind="email")
    assert (email.state, email.attempts) == ("pending", 1)
    assert "451" in email.last_error and "try later" in email.last_error
    assert before + timedelta(seconds=29) < email.due_at <= timezone.now() + timedelta(seconds=31)
    assert staff_mail(smtp) == []
    assert len(journal_mail(smtp)) == 1  # the next notification got through
    dispatch.run()  # not due yet
    assert staff_mail(smtp) == []
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        assert dispatch.run() == 1
    (received,) = staff_mail(smtp)
    assert "hello" in plain(received.message)
    email.refresh_from_db()
    assert (email.state, email.attempts, email.last_error) == ("sent", 2, "")


def test_the_backoff_doubles(capture, route, smtp):
    capture(text_body("hello", wamid=wamid()))
    dispatch.plan()
    Notification.objects.filter(kind="journal").delete()
    waits = []
    now = timezone.now()
    for _ in range(4):
        smtp.refuse.append("451 4.3.0 try later")
        with time_machine.travel(now, tick=False):
            dispatch.send_due()
        email = Notification.objects.get(kind="email")
        waits.append(round((email.due_at - now).total_seconds()))
        now = email.due_at
    assert waits == [30, 60, 120, 240]


def test_a_staff_email_fails_after_max_attempts(capture, route, smtp, settings):
    settings.BRIDGE_MAX_ATTEMPTS = 3
    capture(text_body("hello", wamid=wamid()))
    dispatch.plan()
    Notification.objects.filter(kind="journal").delete()
    later = timezone.now()
    for attempt in (1, 2, 3):
        smtp.refuse.append(f"451 4.3.0 try later {attempt}")
        with time_machine.travel(later):
            dispatch.send_due()
        email = Notification.objects.get()
        assert email.attempts == attempt
        later += timedelta(hours=2)
    assert email.state == "failed"
    assert "try later 3" in email.last_error
    with time_machine.travel(later):
        assert dispatch.send_due() == 0  # given up: not tried again
    assert smtp.received == []


def test_a_journal_copy_never_fails(capture, channel, smtp, settings):
    settings.BRIDGE_MAX_ATTEMPTS = 2
    Route.objects.create(channel=channel, journal_address=JOURNAL)
    capture(text_body("hello", wamid=wamid()))
    dispatch.plan()
    later = timezone.now()
    for attempt in range(1, 6):
        smtp.refuse.append("451 4.3.0 journal full")
        with time_machine.travel(later):
            dispatch.send_due()
        journal = Notification.objects.get()
        assert (journal.state, journal.attempts) == ("pending", attempt)
        later += timedelta(hours=2)
    with time_machine.travel(later):
        assert dispatch.send_due() == 1
    journal.refresh_from_db()
    assert (journal.state, journal.attempts) == ("sent", 6)
    assert len(journal_mail(smtp)) == 1


def test_a_permanent_smtp_refusal_is_retried_too(capture, route, smtp, settings):
    smtp.refuse.append("554 5.7.1 rejected")
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    email = Notification.objects.get(kind="email")
    assert (email.state, email.attempts) == ("pending", 1)
    assert "554" in email.last_error


def test_an_smtp_server_that_is_down_is_retried(capture, route, smtp, settings):
    settings.EMAIL_PORT = free_port()
    settings.JOURNAL_EMAIL = {**settings.JOURNAL_EMAIL, "EMAIL_PORT": free_port()}
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    for notification in Notification.objects.all():
        assert (notification.state, notification.attempts) == ("pending", 1)
        assert "Connection" in notification.last_error
    assert smtp.received == []


def test_unconfigured_email_waits_and_says_why(capture, route, smtp, settings):
    settings.EMAIL_BACKEND = "bridge.mail.UnconfiguredBackend"
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    email = Notification.objects.get(kind="email")
    assert (email.state, email.attempts) == ("pending", 1)
    assert email.last_error == "ConnectionError: EMAIL_URL is not set: no email can be sent"
    assert len(journal_mail(smtp)) == 1  # the journal has its own configuration


def test_a_long_journal_outage_does_not_break_the_bridge(capture, channel, smtp):
    Route.objects.create(channel=channel, journal_address=JOURNAL)
    capture(text_body("hello", wamid=wamid()))
    dispatch.plan()
    Notification.objects.update(attempts=42)
    smtp.refuse.append("451 4.3.0 still down")
    dispatch.send_due()  # raises OverflowError today
    journal = Notification.objects.get()
    assert (journal.state, journal.attempts) == ("pending", 43)
    assert journal.due_at <= timezone.now() + timedelta(hours=1, seconds=1)


def test_an_email_is_not_sent_twice_when_a_later_one_in_its_batch_breaks(capture, route, smtp):
    capture(text_body("hello", wamid=wamid()))
    dispatch.plan()
    Notification.objects.filter(kind="journal").update(attempts=42)

    class RefuseAfterTheFirst(list):  # the staff email (lower id, same due time) goes first
        def __bool__(self) -> bool:
            return len(smtp.received) >= 1

        def pop(self, index: int = 0) -> str:
            return "451 4.3.0 still down"

    smtp.refuse = RefuseAfterTheFirst()
    with contextlib.suppress(OverflowError):
        dispatch.send_due()
    assert len(staff_mail(smtp)) == 1
    smtp.refuse = []
    dispatch.send_due()
    assert len(staff_mail(smtp)) == 1


# --- concurrency -------------------------------------------------------------------------------


def test_two_workers_never_send_a_notification_twice(committed, client, smtp, settings):
    channel = Channel.objects.create(
        name="Private banking", phone_number_id=PNID, display_number="+44", access_token=TOKEN
    )
    Route.objects.create(channel=channel, email_recipients=STAFF, journal_address=JOURNAL)
    from django.urls import reverse

    from tests.messaging.conftest import sign

    for n in range(12):
        body = text_body(f"message {n}", wamid=wamid(), sender=f"4477009{n:05d}", name=f"C{n}")
        response = client.post(
            reverse("whatsapp_webhook"),
            body,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=sign(body),
        )
        assert response.status_code == 200
    process_deliveries()
    assert dispatch.plan() == 12
    assert Notification.objects.count() == 24
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def worker() -> None:
        try:
            barrier.wait()
            dispatch.send_due()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Notification.objects.filter(state="sent").count() == 24
    assert len(smtp.received) == 24
    texts = sorted(re.search(r"message \d+", plain(r.message))[0] for r in staff_mail(smtp))
    assert texts == sorted(f"message {n}" for n in range(12))


# --- retried from the reconciliation page --------------------------------------------------------


def test_it_retries_a_notification_given_up_on_now(capture, route, smtp, settings):
    settings.BRIDGE_MAX_ATTEMPTS = 1
    smtp.refuse.append("451 4.3.0 mailbox unavailable")
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    email = Notification.objects.get(kind="email", state="failed")
    assert dispatch.retry(email) is True
    email.refresh_from_db()
    assert (email.state, email.due_at <= timezone.now()) == ("pending", True)


def test_it_never_retries_a_sent_notification(capture, route, smtp):
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    sent = Notification.objects.get(kind="email")
    assert dispatch.retry(sent) is False
    sent.refresh_from_db()
    assert sent.state == "sent"


def test_it_counts_what_the_planner_has_not_read(capture, route, smtp):
    capture(text_body("hello", wamid=wamid()))
    assert dispatch.unplanned() > 0
    dispatch.plan()
    assert dispatch.unplanned() == 0
