"""Staff notifications by email, through a real SMTP server: who they come from, where replies
go, how they thread, what they carry (text, HTML, media), bursts, routes, and retries."""

import contextlib
import hashlib
import importlib
import itertools
import json
import re
import threading
import time
from datetime import timedelta
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bridge import dispatch, mail, outbound
from bridge.models import BridgeCursor, Notification, NotificationMessage, Route
from bridge.tokens import conversation_of, reply_address
from messaging import graph
from messaging.media import _store
from messaging.models import Channel, Message
from messaging.sequencer import process_deliveries
from tests.bridge.conftest import CLIENT, PNID, TOKEN, free_port, text_body

JOURNAL = "journal@archive.bank.example"
STAFF = ["rm@bank.example", "desk@bank.example"]
CLIENT_NAME = f"Jane Client (+{CLIENT})"
OTHER = "447700900456"
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
_wamids = itertools.count(1)


def wamid() -> str:
    return f"wamid.N{next(_wamids):06d}"


def staff_mail(smtp: Any) -> list[Any]:
    return [r for r in smtp.received if JOURNAL not in r.rcpt_tos]


def journal_mail(smtp: Any) -> list[Any]:
    return [r for r in smtp.received if r.rcpt_tos == [JOURNAL]]


def plain(message: Any) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def html(message: Any) -> str:
    return message.get_body(("html",)).get_content().replace("\r\n", "\n")


def image_body(media_id: str, *, wamid: str, caption: str = "", sender: str = CLIENT) -> bytes:
    image = {"id": media_id, "mime_type": "image/png", "sha256": hashlib.sha256(PHOTO).hexdigest()}
    if caption:
        image["caption"] = caption
    return text_body("", wamid=wamid, sender=sender, extra={"type": "image", "image": image})


def echo_body(text: str, *, wamid: str, to: str = CLIENT) -> bytes:
    """An smb_message_echoes body: the firm wrote from the WhatsApp Business app."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "442079460000", "phone_number_id": PNID},
        "message_echoes": [
            {
                "from": "442079460000",
                "to": to,
                "id": wamid,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "smb_message_echoes", "value": value}]}],
    }
    return json.dumps(body).encode()


def store_photo(message: Message, content: bytes = PHOTO, mime: str = "image/png") -> None:
    """The media fetcher's own storing path (messaging.media._store), without the HTTP part."""
    digest = hashlib.sha256(content).hexdigest()
    media_id = message.payload[message.type]["id"]
    assert _store(message, media_id, graph.Download(content, digest, mime), mime)


# --- who it is from, where replies go, what it says -------------------------------------------


def test_an_email_names_the_client_and_answers_to_the_conversation(capture, route, smtp):
    conversation = capture(text_body("Please call me back", wamid=wamid()))
    dispatch.run()
    (received,) = staff_mail(smtp)
    message = received.message
    assert received.mail_from == "clientwindow@bank.example"
    assert received.rcpt_tos == STAFF
    assert parseaddr(message["From"]) == (
        f"{CLIENT_NAME} via ClientWindow",
        "clientwindow@bank.example",
    )
    assert [a for _, a in getaddresses([message["To"]])] == STAFF
    assert message["Reply-To"] == reply_address(conversation.pk)
    assert conversation_of(message["Reply-To"]) == conversation.pk
    assert message["Subject"] == f"WhatsApp: {CLIENT_NAME}"
    assert message["Thread-Topic"] == message["Subject"]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["Message-ID"].endswith("@bank.example>")
    text = plain(message)
    assert "Please call me back" in text
    assert f"{CLIENT_NAME} on Private banking" in text
    assert f"https://archive.bank.example/conversations/{conversation.pk}/" in text
    body = html(message)
    assert "Please call me back" in body
    assert f'href="https://archive.bank.example/conversations/{conversation.pk}/"' in body
    notification = Notification.objects.get(kind="email")
    assert (notification.state, notification.attempts, notification.last_error) == ("sent", 1, "")
    assert notification.reference == message["Message-ID"]
    assert notification.sent_at is not None


def test_the_email_shows_when_and_who_for_each_message(capture, route, smtp, settings):
    settings.TIME_ZONE = "Europe/London"
    capture(text_body("Winter", wamid=wamid(), timestamp=1736942400))  # 2025-01-15 12:00 UTC
    dispatch.run()
    (received,) = staff_mail(smtp)
    assert "2025-01-15 12:00  Jane Client\nWinter" in plain(received.message)
    assert "2025-01-15 12:00 · Jane Client" in html(received.message)


def test_emails_thread_per_conversation(capture, route, smtp):
    jane = capture(text_body("First from Jane", wamid=wamid()))
    dispatch.run()
    omar = capture(text_body("First from Omar", wamid=wamid(), sender=OTHER, name="Omar Other"))
    dispatch.run()
    capture(text_body("Second from Jane", wamid=wamid()))
    dispatch.run()
    capture(text_body("Second from Omar", wamid=wamid(), sender=OTHER, name="Omar Other"))
    dispatch.run()
    received = [r.message for r in staff_mail(smtp)]
    assert len(received) == 4
    by_reply_to = {}
    for message in received:
        by_reply_to.setdefault(message["Reply-To"], []).append(message)
    assert set(by_reply_to) == {reply_address(jane.pk), reply_address(omar.pk)}
    for conversation in (jane, omar):
        first, second = by_reply_to[reply_address(conversation.pk)]
        root = mail.thread_root(conversation)
        assert first["References"] == second["References"] == root
        assert first["In-Reply-To"] == second["In-Reply-To"] == root
        assert first["Thread-Index"] == second["Thread-Index"] == mail.thread_index(conversation)
        assert first["Subject"] == second["Subject"]
        assert first["Thread-Topic"] == second["Thread-Topic"] == first["Subject"]
    assert mail.thread_root(jane) != mail.thread_root(omar)
    jane_first, omar_first = (
        by_reply_to[reply_address(jane.pk)][0],
        by_reply_to[reply_address(omar.pk)][0],
    )
    assert jane_first["Thread-Index"] != omar_first["Thread-Index"]
    assert jane_first["Subject"] == f"WhatsApp: {CLIENT_NAME}"
    assert omar_first["Subject"] == f"WhatsApp: Omar Other (+{OTHER})"
    assert "Omar Other" in omar_first["From"]
    message_ids = [m["Message-ID"] for m in received]
    assert len(set(message_ids)) == 4
    assert not {m["References"] for m in received} & set(message_ids)


def test_thread_index_is_outlook_shaped(capture, route, smtp):
    import base64

    conversation = capture(text_body("Hello", wamid=wamid()))
    dispatch.run()
    (received,) = staff_mail(smtp)
    raw = base64.b64decode(received.message["Thread-Index"])
    assert len(raw) == 22
    # The first six bytes are a FILETIME (100 ns since 1601) of when the conversation began.
    filetime = int.from_bytes(raw[:6] + b"\0\0", "big") / 10_000_000 - 11_644_473_600
    began = conversation.entry.sealed_at.timestamp()
    assert began - 10 < filetime <= began


def test_the_subject_stays_the_same_when_the_client_changes_their_name(capture, route, smtp):
    capture(text_body("Before", wamid=wamid(), name="Jane Client"))
    dispatch.run()
    capture(text_body("After", wamid=wamid(), name="Jane C. (new phone)"))
    dispatch.run()
    first, second = (r.message for r in staff_mail(smtp))
    assert first["Subject"] == second["Subject"]
    assert first["Thread-Topic"] == second["Thread-Topic"]


# --- hostile text and names --------------------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(document.cookie)>',
    "<a href='javascript:alert(1)'>x</a>",
    "&lt;already escaped&gt; &amp;",
    "{{ secret }} {% debug %}",
    "</div></body></html><h1>fake</h1>",
    "<!-- comment -->",
]
TEMPLATE_TAGS = {"html", "head", "meta", "title", "body", "p", "div", "em", "a", "br"}


def squash(text: str) -> str:
    return " ".join(text.split())


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.data: list[str] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def assert_inert(body: str, *texts: str, names: tuple[str, ...] = ()) -> None:
    """Only the template's own elements and attributes; every text (and name) shows as text."""
    parsed = _Html()
    parsed.feed(body)
    assert {tag for tag, _ in parsed.tags} <= TEMPLATE_TAGS
    for _, attrs in parsed.tags:
        for name, value in attrs:
            assert name in ("charset", "style", "href"), name
            if name == "href":
                assert (value or "").startswith("https://archive.bank.example/"), value
    assert parsed.comments == []
    shown = "".join(parsed.data)
    for text in texts:  # line breaks become <br>
        assert text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "") in shown
    for name in names:  # a name is shown on one line
        assert squash(name) in squash(shown)


@pytest.mark.parametrize("text", HOSTILE)
def test_client_text_is_escaped_in_html_and_verbatim_in_text(capture, route, smtp, text):
    capture(text_body(text, wamid=wamid()))
    dispatch.run()
    (received,) = staff_mail(smtp)
    assert text in plain(received.message)
    assert_inert(html(received.message), text)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_profile_name_is_escaped_and_stays_in_its_header(capture, route, smtp, name):
    capture(text_body("hello", wamid=wamid(), name=name))
    dispatch.run()
    (received,) = staff_mail(smtp)
    message = received.message
    assert parseaddr(message["From"]) == (
        f"{name} (+{CLIENT}) via ClientWindow",
        "clientwindow@bank.example",
    )
    assert message["Subject"] == f"WhatsApp: {name} (+{CLIENT})"
    assert received.rcpt_tos == STAFF
    assert_inert(html(message), "hello", names=(name,))
    assert f"{name} (+{CLIENT}) on Private banking" in plain(message)


CRLF_NAMES = [
    ("Jane\r\nBcc: attacker@evil.example", "Jane Bcc: attacker@evil.example"),
    ("Jane\nX-Injected: yes", "Jane X-Injected: yes"),
    ("Jane\r\n\r\n<b>body</b>", "Jane <b>body</b>"),
    ("Jane\u2028\x1b[31mRed", "Jane [31mRed"),
]


@pytest.mark.parametrize(("name", "shown"), CRLF_NAMES)
def test_a_profile_name_with_line_breaks_is_one_line_in_every_header(
    capture, route, smtp, name, shown
):
    capture(text_body("hello", wamid=wamid(), name=name))
    dispatch.run()
    notification = Notification.objects.get(kind="email")
    assert notification.state == "sent", notification.last_error
    (received,) = staff_mail(smtp)
    message = received.message
    assert received.rcpt_tos == STAFF
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert parseaddr(message["From"])[0] == f"{shown} (+{CLIENT}) via ClientWindow"
    assert message["Subject"] == message["Thread-Topic"] == f"WhatsApp: {shown} (+{CLIENT})"
    assert_inert(html(message), "hello")
    assert "<b>" not in html(message)


_safe = st.characters(blacklist_categories=("Cs", "Cc"))
hostile_text = (
    st.lists(
        st.one_of(st.sampled_from([*HOSTILE, "\n", "&", "<", ">", '"', "'"]), st.text(_safe)),
        min_size=1,
        max_size=6,
    )
    .map("".join)
    .filter(lambda s: s.strip() != "")
)
_examples = itertools.count(1)


@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=hostile_text, name=hostile_text)
def test_any_text_and_name_show_as_text_and_keep_the_headers(capture, route, smtp, text, name):
    number = f"4477009{next(_examples):05d}"  # a new client each example: the name is theirs
    smtp.received.clear()
    conversation = capture(text_body(text, wamid=wamid(), sender=number, name=name))
    dispatch.run()
    (received,) = staff_mail(smtp)
    message = received.message
    assert received.rcpt_tos == STAFF
    assert message["Reply-To"] == reply_address(conversation.pk)
    display, address = parseaddr(message["From"])
    assert address == "clientwindow@bank.example"
    # (encoded words may fold or merge runs of white space: compare words)
    assert squash(display) == squash(f"{name} (+{number}) via ClientWindow")
    assert squash(message["Subject"]) == squash(f"WhatsApp: {name} (+{number})")
    assert sorted(set(message.keys())) == sorted(
        {
            "Content-Type",
            "MIME-Version",
            "Subject",
            "From",
            "To",
            "Date",
            "Message-ID",
            "Reply-To",
            "In-Reply-To",
            "References",
            "Thread-Topic",
            "Thread-Index",
            "Auto-Submitted",
            "X-Auto-Response-Suppress",
        }
    )
    assert_inert(html(message), text, names=(name,))
    assert squash(text) in squash(plain(message))


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


# --- media -------------------------------------------------------------------------------------


def test_fetched_media_is_attached_with_its_exact_bytes(capture, route, smtp, meta):
    capture(image_body("MEDIA-1", wamid=wamid(), caption="the contract"))
    message = Message.objects.get(type="image")
    store_photo(message)
    dispatch.run()
    (received,) = staff_mail(smtp)
    (attachment,) = list(received.message.iter_attachments())
    name = f"{message.entry_id}-image.png"
    assert attachment.get_filename() == name
    assert attachment.get_content_type() == "image/png"
    assert attachment.get_content() == PHOTO
    assert "the contract" in plain(received.message)
    assert f"[attached: {name}]" in plain(received.message)
    assert f"Attached: {name}" in html(received.message)
    assert "Photo" in plain(received.message)


def test_media_over_the_limit_is_a_portal_link(capture, route, smtp, meta, settings):
    settings.BRIDGE_ATTACHMENT_MAX_BYTES = len(PHOTO) - 1
    capture(image_body("MEDIA-1", wamid=wamid()))
    message = Message.objects.get(type="image")
    store_photo(message)
    dispatch.run()
    (received,) = staff_mail(smtp)
    assert list(received.message.iter_attachments()) == []
    link = f"https://archive.bank.example/messages/{message.pk}/media/"
    assert f"[open in ClientWindow: {link}]" in plain(received.message)
    assert f'href="{link}"' in html(received.message)


def test_media_exactly_at_the_limit_is_attached(capture, route, smtp, meta, settings):
    settings.BRIDGE_ATTACHMENT_MAX_BYTES = len(PHOTO)
    capture(image_body("MEDIA-1", wamid=wamid()))
    store_photo(Message.objects.get(type="image"))
    dispatch.run()
    (received,) = staff_mail(smtp)
    (attachment,) = list(received.message.iter_attachments())
    assert attachment.get_content() == PHOTO


def test_the_attachment_limit_is_for_all_media_of_an_email(capture, route, smtp, meta, settings):
    other = PHOTO[::-1]
    settings.BRIDGE_ATTACHMENT_MAX_BYTES = len(PHOTO) + len(other) - 1
    capture(
        image_body("MEDIA-1", wamid=wamid()),
        image_body("MEDIA-2", wamid=wamid()),
    )
    first, second = Message.objects.filter(type="image").order_by("entry_id")
    store_photo(first)
    store_photo(second, other)
    dispatch.run()
    (received,) = staff_mail(smtp)
    (attachment,) = list(received.message.iter_attachments())
    assert attachment.get_content() == PHOTO
    link = f"https://archive.bank.example/messages/{second.pk}/media/"
    assert link in plain(received.message)


def test_an_email_waits_for_media_being_fetched(capture, route, smtp, meta, settings):
    settings.BRIDGE_MEDIA_WAIT_SECONDS = 60
    capture(image_body("MEDIA-1", wamid=wamid()))
    dispatch.run()
    assert staff_mail(smtp) == []
    assert journal_mail(smtp) == []  # the journal copy waits for the media too
    for waiting in Notification.objects.all():
        assert (waiting.state, waiting.attempts) == ("pending", 0)
        assert waiting.due_at > timezone.now()
    store_photo(Message.objects.get(type="image"))
    with time_machine.travel(timezone.now() + timedelta(seconds=6)):
        dispatch.run()
    (received,) = staff_mail(smtp)
    (attachment,) = list(received.message.iter_attachments())
    assert attachment.get_content() == PHOTO
    (copy,) = journal_mail(smtp)
    assert PHOTO in [p.get_content() for p in copy.message.iter_attachments()]


def test_an_email_stops_waiting_for_media_after_the_wait(capture, route, smtp, meta, settings):
    settings.BRIDGE_MEDIA_WAIT_SECONDS = 60
    conversation = capture(image_body("MEDIA-1", wamid=wamid(), caption="see photo"))
    dispatch.run()
    with time_machine.travel(timezone.now() + timedelta(seconds=30)):
        dispatch.run()
    assert staff_mail(smtp) == []
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        dispatch.run()
    (received,) = staff_mail(smtp)
    assert list(received.message.iter_attachments()) == []
    assert "see photo" in plain(received.message)
    link = f"https://archive.bank.example/conversations/{conversation.pk}/"
    assert f"[open in ClientWindow: {link}]" in plain(received.message)


def test_no_wait_when_the_wait_is_zero(capture, route, smtp, meta, settings):
    settings.BRIDGE_MEDIA_WAIT_SECONDS = 0
    capture(image_body("MEDIA-1", wamid=wamid()))
    dispatch.run()
    (received,) = staff_mail(smtp)
    assert list(received.message.iter_attachments()) == []


def test_a_hostile_document_name_is_made_safe_and_shown_as_text(capture, route, smtp, meta):
    hostile = '../../etc/passwd"\r\nX-Evil: 1<script>.pdf'
    document = {"id": "DOC-1", "mime_type": "application/pdf", "filename": hostile}
    capture(text_body("", wamid=wamid(), extra={"type": "document", "document": document}))
    message = Message.objects.get(type="document")
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 8
    store_photo(message, pdf, "application/pdf")
    dispatch.run()
    (received,) = staff_mail(smtp)
    email = received.message
    assert email["X-Evil"] is None
    (attachment,) = list(email.iter_attachments())
    assert attachment.get_content() == pdf
    assert attachment.get_content_type() == "application/pdf"
    filename = attachment.get_filename()
    assert filename.startswith(f"{message.entry_id}-") and filename.endswith(".pdf")
    assert "/" not in filename and "\\" not in filename and '"' not in filename
    assert "\n" not in filename and "<" not in filename
    assert_inert(html(email), names=(f"Document: {hostile}",))


def test_a_reaction_is_described_not_shown_as_a_message(capture, route, smtp):
    target = wamid()
    capture(text_body("Shall I sell?", wamid=target))
    dispatch.run()
    smtp.received.clear()
    reaction = {"type": "reaction", "reaction": {"message_id": target, "emoji": "👍"}}
    capture(text_body("", wamid=wamid(), extra=reaction))
    dispatch.run()
    (received,) = staff_mail(smtp)
    assert "Jane Client · Reacted 👍" in plain(received.message)


def test_media_that_can_never_be_fetched_does_not_hold_the_email(
    capture, route, smtp, meta, settings
):
    from messaging.media import fetch_media

    settings.BRIDGE_MEDIA_WAIT_SECONDS = 600
    capture(text_body("", wamid=wamid(), extra={"type": "image", "image": {}}))  # no media id
    assert fetch_media(Message.objects.get(type="image"))  # recorded as unavailable
    dispatch.run()
    (received,) = staff_mail(smtp)
    assert list(received.message.iter_attachments()) == []


# --- metadata-only routes ----------------------------------------------------------------------


def test_a_metadata_only_email_has_no_text_and_no_media(capture, route, smtp, meta):
    Route.objects.filter(pk=route.pk).update(metadata_only=True)
    conversation = capture(
        text_body("Confidential: sell 10,000 XYZ", wamid=wamid()),
        image_body("MEDIA-1", wamid=wamid(), caption="secret caption"),
    )
    store_photo(Message.objects.get(type="image"))
    dispatch.run()
    (received,) = staff_mail(smtp)
    message = received.message
    raw = received.raw.decode("ascii", "replace")
    for secret in ("Confidential", "XYZ", "secret caption"):
        assert secret not in plain(message) and secret not in html(message)
        assert secret not in raw
    assert list(message.iter_attachments()) == []
    link = f"https://archive.bank.example/conversations/{conversation.pk}/"
    assert link in plain(message)
    assert f'href="{link}"' in html(message)
    assert "The content is not sent by email" in plain(message)
    assert "Jane Client" in plain(message)
    # the journal is the archive: it has everything
    journal = [plain(r.message) for r in journal_mail(smtp)]
    assert any("Confidential: sell 10,000 XYZ" in j for j in journal)


def test_a_metadata_only_email_does_not_name_the_document(capture, route, smtp, meta):
    Route.objects.filter(pk=route.pk).update(metadata_only=True)
    document = {"id": "DOC-1", "mime_type": "application/pdf", "filename": "Merger-Q3-secret.pdf"}
    capture(text_body("", wamid=wamid(), extra={"type": "document", "document": document}))
    with time_machine.travel(timezone.now() + timedelta(seconds=120)):
        dispatch.run()
    (received,) = staff_mail(smtp)
    assert "Merger-Q3-secret" not in plain(received.message)
    assert "Merger-Q3-secret" not in html(received.message)


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
