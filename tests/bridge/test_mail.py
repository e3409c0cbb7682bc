"""Staff notification emails (bridge/mail.py), through a real SMTP server: who they come from,
where replies go, how they thread, what they carry (text, HTML, media) and what a
metadata-only route leaves out; hostile text and names stay text."""

import itertools
from datetime import timedelta
from email.utils import getaddresses
from html.parser import HTMLParser

import pytest
import time_machine
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bridge import dispatch, mail
from bridge.models import Notification, Route
from bridge.tokens import conversation_of, reply_address
from messaging.models import Message
from tests.bridge.conftest import CLIENT, text_body
from tests.bridge.staff_emails import (
    CLIENT_NAME,
    OTHER,
    PHOTO,
    STAFF,
    html,
    image_body,
    journal_mail,
    plain,
    sender,
    staff_mail,
    store_photo,
    wamid,
)
from tests.mail_headers import HARD, decoded, longest_line, raw_headers

# --- who it is from, where replies go, what it says -------------------------------------------


def test_an_email_names_the_client_and_answers_to_the_conversation(capture, route, smtp):
    conversation = capture(text_body("Please call me back", wamid=wamid()))
    dispatch.run()
    (received,) = staff_mail(smtp)
    message = received.message
    assert received.mail_from == "clientwindow@bank.example"
    assert received.rcpt_tos == STAFF
    assert sender(received) == (
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
    assert sender(received) == (
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
    assert sender(received)[0] == f"{shown} (+{CLIENT}) via ClientWindow"
    assert message["Subject"] == message["Thread-Topic"] == f"WhatsApp: {shown} (+{CLIENT})"
    assert_inert(html(message), "hello")
    assert "<b>" not in html(message)


@pytest.mark.parametrize("name", HARD)
def test_a_name_no_header_could_carry_as_it_is_is_sent_and_reads_back(capture, route, smtp, name):
    """Found by the test below: a 420-character name of combining marks made a From line of
    1,073 octets, which the SMTP server refused (RFC 5321's limit is 998), so staff never got
    the message. Names made of encoded words must show as typed, not decoded into a forged
    sender; a word too long to fold is encoded too."""
    capture(text_body("hello", wamid=wamid(), name=name))
    dispatch.run()
    notification = Notification.objects.get(kind="email")
    assert notification.state == "sent", notification.last_error
    (received,) = staff_mail(smtp)
    assert sender(received) == (f"{name} (+{CLIENT}) via ClientWindow", "clientwindow@bank.example")
    for header in ("Subject", "Thread-Topic"):
        assert decoded(raw_headers(received.raw, header)[0]) == f"WhatsApp: {name} (+{CLIENT})"
    assert longest_line(received.raw) <= 78  # as encoded words, every one of them folds


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
    # read as a mail client reads it (Python's parser keeps the space between encoded words)
    display, address = sender(received)
    assert address == "clientwindow@bank.example"
    # (encoded words may fold or merge runs of white space: compare words)
    assert squash(display) == squash(f"{name} (+{number}) via ClientWindow")
    assert longest_line(received.raw) <= 78
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
