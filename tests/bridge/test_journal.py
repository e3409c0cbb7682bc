"""The journal: every message, both directions, as its own EML (the export's bytes) to the route's
journal address, retried until the journal accepts it; and the reconciliation page that shows an
auditor what has not arrived yet and lets an administrator try again."""

import hashlib
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from bridge import dispatch, outbound
from bridge.models import Notification, Route
from exports import eml
from exports.source import Part
from messaging.models import Message
from messaging.participants import latest_names
from review.transcript import decorate
from tests.bridge.conftest import CLIENT, free_port, text_body
from tests.bridge.staff_emails import (
    JOURNAL,
    PHOTO,
    echo_body,
    image_body,
    journal_mail,
    store_photo,
    wamid,
)


def expected_bytes(message: Message) -> bytes:
    """What the EML export writes for this message, computed independently of bridge/mail.py."""
    message = Message.objects.select_related("conversation__channel", "entry").get(pk=message.pk)
    conversation = message.conversation
    name = latest_names({conversation.participant_id}).get(conversation.participant_id, "")
    part = Part(conversation, name, 1, message.sent_at, message.sent_at)
    (row,) = decorate(conversation, [message])
    return eml.message_bytes(None, part, row)


# --- what is journaled -------------------------------------------------------------------------


def test_every_message_both_directions_is_one_eml_to_the_journal(capture, route, smtp, meta):
    conversation = capture(text_body("Client asks", wamid=wamid()))
    capture(echo_body("Firm answers from the app", wamid=wamid()))
    (sent,) = outbound.send(
        conversation, [outbound.Text("Firm answers by email")], outbound.Author("email")
    )
    assert sent.state == "sent"
    dispatch.run()
    copies = journal_mail(smtp)
    messages = list(Message.objects.order_by("entry_id"))
    assert [m.direction for m in messages] == ["in", "out", "out"]
    assert len(copies) == 3
    channel = conversation.channel
    assert sorted(c.message["Message-ID"] for c in copies) == sorted(
        eml.message_id(channel, m.wamid) for m in messages
    )
    for copy in copies:
        assert copy.mail_from == "clientwindow@bank.example"
    journal = Notification.objects.filter(kind="journal")
    assert journal.count() == 3 and {n.state for n in journal} == {"sent"}
    assert sorted(n.reference for n in journal) == sorted(c.message["Message-ID"] for c in copies)
    for notification in journal:
        assert notification.messages.count() == 1


def test_a_client_message_is_the_export_byte_for_byte(capture, route, smtp):
    capture(text_body("Please sell <b>100</b> shares\nat best", wamid=wamid()))
    dispatch.run()
    (copy,) = journal_mail(smtp)
    message = Message.objects.get()
    assert copy.raw == expected_bytes(message)
    parsed = copy.message
    assert parsed["Message-ID"] == eml.message_id(message.channel, message.wamid)
    assert parseaddr(parsed["From"]) == ("Jane Client", f"+{CLIENT}@whatsapp.invalid")
    assert parseaddr(parsed["To"]) == ("Private banking", "+442079460000@whatsapp.invalid")
    assert parsed["X-ClientWindow-Direction"] == "inbound"
    assert parsed["X-ClientWindow-Wamid"] == message.wamid
    assert parsed["X-ClientWindow-Ledger-Seq"] == str(message.entry_id)
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Please sell <b>100</b> shares\nat best\n")
    assert f"Ledger: seq {message.entry_id}" in text


def test_a_firm_message_is_from_the_firm_to_the_client(capture, route, smtp):
    capture(text_body("Client asks", wamid=wamid()))
    dispatch.run()
    smtp.received.clear()
    capture(echo_body("Firm answers", wamid=wamid()))
    dispatch.run()
    (copy,) = journal_mail(smtp)
    message = Message.objects.get(direction="out")
    assert copy.raw == expected_bytes(message)
    parsed = copy.message
    assert parseaddr(parsed["From"]) == ("Private banking", "+442079460000@whatsapp.invalid")
    assert parseaddr(parsed["To"]) == ("Jane Client", f"+{CLIENT}@whatsapp.invalid")
    assert parsed["X-ClientWindow-Direction"] == "outbound"
    assert "Firm answers" in parsed.get_body(("plain",)).get_content()


def test_a_message_with_stored_media_carries_its_exact_bytes(capture, route, smtp, meta):
    capture(image_body("MEDIA-1", wamid=wamid()))
    message = Message.objects.get()
    store_photo(message)
    dispatch.run()
    (copy,) = journal_mail(smtp)
    assert copy.raw == expected_bytes(message)
    (attachment,) = list(copy.message.iter_attachments())
    assert attachment.get_content() == PHOTO
    assert attachment.get_filename() == f"{message.entry_id}-image.png"
    digest = hashlib.sha256(PHOTO).hexdigest()
    assert copy.message["X-ClientWindow-Attachment-SHA256"].strip() == digest


def test_the_journal_receives_media_fetched_after_the_message(capture, route, smtp, meta):
    capture(image_body("MEDIA-1", wamid=wamid()))
    dispatch.run()
    store_photo(Message.objects.get())
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        dispatch.run()
    contents = [a.get_content() for c in journal_mail(smtp) for a in c.message.iter_attachments()]
    assert PHOTO in contents


def test_each_journal_address_gets_one_copy(capture, route, channel, smtp):
    conversation = capture(text_body("first", wamid=wamid()))
    dispatch.run()
    smtp.received.clear()
    Route.objects.create(
        channel=channel, conversation=conversation, journal_address="rm-journal@bank.example"
    )
    capture(text_body("second", wamid=wamid()))
    dispatch.run()
    assert len(journal_mail(smtp)) == 1
    assert len(journal_mail(smtp, "rm-journal@bank.example")) == 1
    assert journal_mail(smtp)[0].raw == journal_mail(smtp, "rm-journal@bank.example")[0].raw


def test_the_same_journal_address_on_both_routes_gets_one_copy(capture, route, channel, smtp):
    conversation = capture(text_body("first", wamid=wamid()))
    dispatch.run()
    smtp.received.clear()
    Route.objects.create(
        channel=channel, conversation=conversation, journal_address=JOURNAL.upper()
    )
    capture(text_body("second", wamid=wamid()))
    dispatch.run()
    journal = [r for r in smtp.received if r.rcpt_tos[0].lower() == JOURNAL]
    assert len(journal) == 1


def test_a_journal_copy_is_retried_until_accepted(capture, channel, smtp, settings):
    settings.BRIDGE_MAX_ATTEMPTS = 2  # staff notifications give up; the journal never does
    Route.objects.create(channel=channel, journal_address=JOURNAL)
    capture(text_body("keep me", wamid=wamid()))
    smtp.refuse.extend(["451 4.3.0 journal busy"] * 3)
    dispatch.run()
    later = timezone.now()
    for attempt in (1, 2, 3):
        journal = Notification.objects.get()
        assert (journal.state, journal.attempts) == ("pending", attempt)
        assert "journal busy" in journal.last_error
        assert journal.due_at > later
        assert smtp.received == []
        later = journal.due_at + timedelta(seconds=1)
        with time_machine.travel(later):
            dispatch.run()
    journal.refresh_from_db()
    assert (journal.state, journal.attempts, journal.last_error) == ("sent", 4, "")
    (copy,) = journal_mail(smtp)
    assert copy.raw == expected_bytes(Message.objects.get())


def test_a_journal_copy_goes_to_the_address_it_was_planned_for(capture, route, smtp):
    """The address is fixed when the copy is planned: changing the route later neither loses
    nor redirects copies already due."""
    capture(text_body("keep me", wamid=wamid()))
    dispatch.plan()
    Route.objects.filter(pk=route.pk).update(journal_address="")
    dispatch.send_due()
    journal = Notification.objects.get(kind="journal")
    (copy,) = journal_mail(smtp)
    assert copy.rcpt_tos == ["journal@archive.bank.example"]
    assert journal.state == "sent" and journal.target == "journal@archive.bank.example"


def test_a_copy_the_relay_accepts_for_nobody_is_not_marked_sent(capture, route, smtp):
    capture(text_body("keep me", wamid=wamid()))
    dispatch.plan()
    Notification.objects.filter(kind="journal").update(target="")
    Route.objects.filter(pk=route.pk).update(journal_address="")
    dispatch.send_due()
    journal = Notification.objects.get(kind="journal")
    assert journal_mail(smtp) == []
    assert journal.state == "pending" and journal.attempts == 1
    assert "no recipients" in journal.last_error


def test_the_journal_has_its_own_smtp_server(capture, route, smtp, settings):
    """JOURNAL_EMAIL may point elsewhere: a broken staff relay does not stop the journal."""
    settings.EMAIL_PORT = free_port()  # nothing listens there
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    assert Notification.objects.get(kind="email").state == "pending"
    assert Notification.objects.get(kind="journal").state == "sent"
    assert len(journal_mail(smtp)) == 1


# --- the reconciliation page -------------------------------------------------------------------


@pytest.fixture
def backlog(capture, route, smtp, settings) -> dict[str, Notification]:
    """A journal copy waiting to be retried and a staff email given up on."""
    settings.BRIDGE_MAX_ATTEMPTS = 1
    smtp.refuse.extend(["451 4.3.0 mailbox unavailable", "452 4.2.2 journal over quota"])
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    email = Notification.objects.get(kind="email")
    journal = Notification.objects.get(kind="journal")
    assert (email.state, journal.state) == ("failed", "pending")
    return {"email": email, "journal": journal}


def page(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client.get(reverse("bridge:reconciliation"))


def section(html: str, table_id: str) -> str:
    start = html.index(f'<table class="list" id="{table_id}">')
    return html[start : html.index("</table>", start)]


def test_an_auditor_sees_what_is_not_journaled_and_what_failed(client, auditor, backlog):
    response = page(client, auditor)
    assert response.status_code == 200
    html = response.content.decode()
    journal = section(html, "journal")
    assert JOURNAL in journal
    assert "journal over quota" in journal
    assert f'href="/conversations/{backlog["journal"].conversation_id}/"' in journal
    assert "Everything is journaled" not in journal
    failed = section(html, "failed")
    assert "mailbox unavailable" in failed
    assert "Email" in failed
    assert "Retry now" not in html  # auditors look; administrators act
    assert response.context["journal_total"] == 1


def test_an_administrator_sees_retry_buttons(client, admin_user, backlog):
    response = page(client, admin_user)
    assert response.status_code == 200
    html = response.content.decode()
    for notification in backlog.values():
        assert f'action="{reverse("bridge:retry", args=[notification.pk])}"' in html


def test_the_page_says_when_everything_is_through(client, auditor, route, smtp, capture):
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    html = page(client, auditor).content.decode()
    assert "Everything is journaled." in section(html, "journal")
    assert "not yet read by the bridge" not in html


def test_the_page_says_when_the_bridge_is_behind(client, auditor, route, capture):
    capture(text_body("hello", wamid=wamid()))
    response = page(client, auditor)
    assert response.context["unplanned"] > 0
    assert "not yet read by the bridge" in response.content.decode()


def test_a_reviewer_may_not_see_the_page(client, reviewer):
    assert page(client, reviewer).status_code == 403


def test_anonymous_users_are_sent_to_log_in(client, db):
    response = client.get(reverse("bridge:reconciliation"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_an_administrator_retries_a_failed_notification(client, admin_user, backlog, smtp):
    email = backlog["email"]
    client.force_login(admin_user)
    response = client.post(reverse("bridge:retry", args=[email.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("bridge:reconciliation")
    email.refresh_from_db()
    assert email.state == "pending"
    assert email.due_at <= timezone.now()
    assert dispatch.send_due() == 1
    email.refresh_from_db()
    assert email.state == "sent"
    staff = [r for r in smtp.received if r.rcpt_tos != [JOURNAL]]
    assert len(staff) == 1


def test_an_administrator_retries_a_journal_copy_now(client, admin_user, backlog, smtp):
    journal = backlog["journal"]
    assert journal.due_at > timezone.now()
    client.force_login(admin_user)
    client.post(reverse("bridge:retry", args=[journal.pk]))
    journal.refresh_from_db()
    assert journal.due_at <= timezone.now() and journal.attempts == 1
    dispatch.send_due()
    journal.refresh_from_db()
    assert journal.state == "sent"
    assert len(journal_mail(smtp)) == 1


@pytest.mark.parametrize("who", ["auditor", "reviewer"])
def test_only_administrators_may_retry(client, backlog, request, who):
    client.force_login(request.getfixturevalue(who))
    email = backlog["email"]
    response = client.post(reverse("bridge:retry", args=[email.pk]))
    assert response.status_code == 403
    email.refresh_from_db()
    assert email.state == "failed"


def test_anonymous_users_may_not_retry(client, backlog):
    email = backlog["email"]
    response = client.post(reverse("bridge:retry", args=[email.pk]))
    assert response.status_code == 302
    email.refresh_from_db()
    assert email.state == "failed"


def test_retry_is_a_post(client, admin_user, backlog):
    client.force_login(admin_user)
    response = client.get(reverse("bridge:retry", args=[backlog["email"].pk]))
    assert response.status_code == 405


def test_a_sent_notification_is_not_retried(client, admin_user, route, smtp, capture):
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    sent = Notification.objects.get(kind="email")
    client.force_login(admin_user)
    response = client.post(reverse("bridge:retry", args=[sent.pk]), follow=True)
    assert "already sent" in response.content.decode()
    sent.refresh_from_db()
    assert sent.state == "sent"
    assert dispatch.send_due() == 0
    assert len(smtp.received) == 2  # the email and the journal copy, once each


def test_a_journal_copy_never_names_itself_failed(capture, route, smtp, settings):
    settings.BRIDGE_MAX_ATTEMPTS = 1
    smtp.refuse.extend(["451 4.3.0 later"] * 2)
    capture(text_body("hello", wamid=wamid()))
    dispatch.run()
    assert set(Notification.objects.values_list("kind", "state")) == {
        ("email", "failed"),
        ("journal", "pending"),
    }
