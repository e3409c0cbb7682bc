"""Staff replies by email, to the client on WhatsApp (bridge/inbound.py, bridge/outbound.py).

Emails come in through `bridge.inbound.receive` (what the SMTP gateway, the provider webhooks and
IMAP polling all call) and are processed by `process_pending()`; the Graph API is the local
`meta` server, notices to senders arrive at the local `smtp` server."""

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, MIMEPart
from email.utils import formatdate, make_msgid
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.urls import reverse

from archive.models import LedgerEntry
from archive.verify import verify_ledger
from bridge import inbound, outbound
from bridge.models import InboundEmail, MessageTemplate, Outbound, Route
from bridge.tokens import reply_address
from messaging.models import Conversation, Message, StatusEvent
from retention.models import RetentionRecord
from review.transcript import window
from tests.bridge.conftest import CLIENT, PNID, text_body

RM = "rm@bank.example"
SUBJECT = "Re: Jane Client (+447700900123) on WhatsApp"
PDF = b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n" + bytes(range(256)) * 16 + b"\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
RE_ENGAGEMENT = {
    "error": {
        "message": "(#131047) Re-engagement message",
        "type": "OAuthException",
        "code": 131047,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "Message failed to send because more than 24 hours have passed",
        },
    }
}


# --- helpers ---------------------------------------------------------------------------------


def reply_email(
    to: str,
    text: str | None = "Done, sold at 101.",
    *,
    sender: str = f"Robert Miller <{RM}>",
    html: str | None = None,
    files: tuple[tuple[bytes, str, str], ...] = (),
    headers: tuple[tuple[str, str], ...] = (),
    message_id: str | None = None,
) -> bytes:
    """A reply as a mail client writes it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = SUBJECT
    message["Date"] = formatdate()
    message["Message-ID"] = message_id or make_msgid("reply", "bank.example")
    for name, value in headers:
        message[name] = value
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    for content, mime, filename in files:
        maintype, subtype = mime.split("/")
        message.add_attachment(content, maintype, subtype, filename=filename)
    return message.as_bytes()


def deliver(raw: bytes, to: str | None = None, envelope_from: str = RM) -> InboundEmail:
    """Receive as the gateway does, process, and return the stored email."""
    stored = inbound.receive(raw, "smtp", envelope_from, [to] if to else [])
    inbound.process_pending()
    stored.refresh_from_db()
    return stored


def fields(entry: LedgerEntry) -> dict[str, Any]:
    return json.loads(bytes(entry.envelope))


def content(entry: LedgerEntry, name: str) -> bytes:
    return bytes(entry.contents.get(name=name).content)


def only_notice(smtp: Any, to: str = RM) -> tuple[EmailMessage, str]:
    """The one notice sent, to `to`: machine-written, so never answered automatically."""
    (received,) = smtp.received
    assert received.rcpt_tos == [to]
    message = received.message
    assert message["To"] == to
    assert message["Auto-Submitted"] == "auto-generated"
    return message, message.get_content()


def media_upload(request: tuple[str, dict[str, str], bytes]) -> dict[str, Any]:
    """The fields of a multipart upload to /media."""
    path, headers, body = request
    boundary = re.search(r"boundary=([^;]+)", headers["Content-Type"])[1].strip('"')  # type: ignore[index]
    found: dict[str, Any] = {"path": path}
    for part in body.split(b"--" + boundary.encode())[1:-1]:
        head, _, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        value = value.removesuffix(b"\r\n")
        name = re.search(rb'name="([^"]+)"', head)[1].decode()  # type: ignore[index]
        filename = re.search(rb'filename="([^"]+)"', head)
        found[name] = value
        if filename:
            found[f"{name}.filename"] = filename[1].decode()
            found[f"{name}.type"] = re.search(rb"Content-Type: (\S+)", head)[1].decode()  # type: ignore[index]
    return found


def paths(meta: Any) -> list[str]:
    return [path.rsplit("/", 1)[1] for path, _, _ in meta.requests]


@pytest.fixture(autouse=True)
def only_this_tests_emails(db: None) -> None:
    """tests/bridge/test_smoke.py commits a reply email from the gateway's thread, outside its
    test transaction, and leaves it pending: keep it out of these tests (rolled back after)."""
    InboundEmail.objects.filter(state="pending").update(state="ignored")


@pytest.fixture
def conversation(capture: Any, route: Route, smtp: Any, meta: Any) -> Conversation:
    return capture(text_body("Please sell 100 shares", wamid="wamid.IN1"))


@pytest.fixture
def address(conversation: Conversation) -> str:
    return reply_address(conversation.pk)


# --- a reply goes to the client ------------------------------------------------------------


def test_a_reply_goes_to_the_client_as_text(conversation, address, meta, smtp) -> None:
    raw = reply_email(
        address,
        "Done, sold at 101.\n\nOn Mon, 3 Mar 2025 at 10:02, Jane Client via ClientWindow "
        "<clientwindow@bank.example> wrote:\n> Please sell 100 shares\n",
    )
    stored = deliver(raw, address)
    assert stored.state == "sent", stored.reason
    assert stored.reason == ""
    assert stored.sender == RM
    assert stored.conversation == conversation
    assert stored.processed_at is not None
    assert meta.sends() == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CLIENT,
            "type": "text",
            "text": {"preview_url": False, "body": "Done, sold at 101."},
        }
    ]
    assert [p for p, _, _ in meta.requests] == [f"/v25.0/{PNID}/messages"]
    sent = Outbound.objects.get()
    assert (sent.source, sent.email, sent.sender, sent.state) == ("email", stored, RM, "sent")
    assert sent.message.text == "Done, sold at 101."
    assert smtp.received == []  # a sent reply is not answered


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        (
            "Yes, done.\n\nOn Mon, 3 Mar 2025 at 10:02, Jane <jane@example.com> wrote:\n"
            "> Please sell\n> 100 shares\n",
            "Yes, done.",
        ),
        (
            "Will do.\n\nFrom: Jane Client via ClientWindow <clientwindow@bank.example>\n"
            "Sent: Monday, March 3, 2025 10:02 AM\nTo: Robert Miller <rm@bank.example>\n"
            "Subject: Jane Client (+447700900123) on WhatsApp\n\nPlease sell 100 shares\n",
            "Will do.",
        ),
        (
            "Will do.\n\n________________________________\nFrom: Jane Client via ClientWindow "
            "<clientwindow@bank.example>\nSent: Monday, March 3, 2025 10:02 AM\n"
            "To: Robert Miller <rm@bank.example>\nSubject: WhatsApp\n\nPlease sell\n",
            "Will do.",
        ),
        (
            "Sold at 101.\nConfirmation follows.\n\n-- \nRobert Miller\nPrivate Banking\n"
            "+44 20 7946 0001\n",
            "Sold at 101.\nConfirmation follows.",
        ),
        (
            "Danke, erledigt.\n\nAm 03.03.2025 um 10:02 schrieb Jane Client "
            "<clientwindow@bank.example>:\n> Bitte verkaufen\n",
            "Danke, erledigt.",
        ),
    ],
    ids=["on-wrote", "outlook", "outlook-rule", "signature", "german"],
)
def test_quoted_history_and_signatures_are_not_sent(
    conversation, address, meta, written, sent
) -> None:
    stored = deliver(reply_email(address, written), address)
    assert stored.state == "sent", stored.reason
    (body,) = meta.sends()
    assert body["text"]["body"] == sent


def test_an_html_only_reply_is_sent_as_text(conversation, address, meta) -> None:
    html = (
        "<html><head><style>p { color: red; }</style><title>Re</title></head><body>"
        "<p>Price &amp; terms: &lt;100&gt; &eacute;t&eacute;</p>"
        "<p>Line two<br>Line three</p>"
        "<blockquote type='cite'><p>Please sell 100 shares</p></blockquote>"
        "</body></html>"
    )
    stored = deliver(reply_email(address, None, html=html), address)
    assert stored.state == "sent", stored.reason
    (body,) = meta.sends()
    assert body["text"]["body"] == "Price & terms: <100> été\nLine two\nLine three"


def test_gmails_html_quote_is_dropped(conversation, address, meta) -> None:
    html = (
        '<div dir="ltr">Sold at 101.<div><br></div><div>Robert</div></div><br>'
        '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, Jane wrote:<br></div>'
        '<blockquote class="gmail_quote">Please sell</blockquote></div>'
    )
    deliver(reply_email(address, None, html=html), address)
    (body,) = meta.sends()
    assert body["text"]["body"] == "Sold at 101.\n\nRobert"
    assert "Please sell" not in body["text"]["body"]


def test_the_plain_text_alternative_is_preferred(conversation, address, meta) -> None:
    raw = reply_email(address, "Plain version", html="<p>HTML <b>version</b></p>")
    deliver(raw, address)
    (body,) = meta.sends()
    assert body["text"]["body"] == "Plain version"


@pytest.mark.parametrize(
    "written",
    [
        "\nOn Mon, 3 Mar 2025 at 10:02, Jane <jane@example.com> wrote:\n> Please sell 100 shares\n",
        "\nFrom: Jane Client via ClientWindow <clientwindow@bank.example>\n"
        "Sent: Monday, March 3, 2025 10:02 AM\nTo: Robert Miller <rm@bank.example>\n"
        "Subject: WhatsApp\n\nPlease sell 100 shares\n",
    ],
    ids=["on-wrote", "outlook"],
)
def test_a_reply_with_nothing_above_the_quote_sends_nothing(
    conversation, address, meta, smtp, written
) -> None:
    stored = deliver(reply_email(address, written), address)
    assert [s["text"]["body"] for s in meta.sends()] == []
    assert stored.state == "refused"
    _, text = only_notice(smtp)
    assert "nothing to send" in text


# --- attachments ---------------------------------------------------------------------------


def test_a_pdf_is_uploaded_then_sent_as_a_document(conversation, address, meta) -> None:
    raw = reply_email(address, None, files=((PDF, "application/pdf", "statement.pdf"),))
    stored = deliver(raw, address)
    assert stored.state == "sent", stored.reason
    assert paths(meta) == ["media", "messages"]
    upload = media_upload(meta.requests[0])
    assert upload["path"] == f"/v25.0/{PNID}/media"
    assert upload["messaging_product"] == b"whatsapp"
    assert upload["type"] == b"application/pdf"
    assert upload["file"] == PDF
    assert upload["file.filename"] == "statement.pdf"
    assert upload["file.type"] == "application/pdf"
    assert meta.requests[0][1]["Authorization"] == "Bearer EAAG-bridge-token"
    (body,) = meta.sends()
    assert body["type"] == "document"
    assert body["document"] == {"id": "900001", "filename": "statement.pdf"}  # the upload's id
    assert body["to"] == CLIENT
    sent = Outbound.objects.get()
    assert sent.media.size == len(PDF)
    assert sent.message.attachment.media_id == "900001"


def test_a_small_jpeg_is_sent_as_an_image(conversation, address, meta) -> None:
    raw = reply_email(address, None, files=((JPEG, "image/jpeg", "chart.jpg"),))
    deliver(raw, address)
    assert paths(meta) == ["media", "messages"]
    assert media_upload(meta.requests[0])["type"] == b"image/jpeg"
    (body,) = meta.sends()
    assert body["type"] == "image"
    assert body["image"] == {"id": "900001"}


def test_an_inline_signature_logo_is_not_sent(conversation, address, meta) -> None:
    """A logo the HTML shows (cid:) stays; an attached photo goes, even one with a Content-ID."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = f"RM <{RM}>", address, SUBJECT
    message["Message-ID"] = make_msgid("reply", "bank.example")
    message.set_content("See the photo.\n\n-- \nRobert Miller\n")
    message.add_alternative(
        '<p>See the photo.</p><p>-- <br>Robert Miller <img src="cid:Logo.PNG@01DA"></p>',
        subtype="html",
    )
    message.add_attachment(
        PNG, "image", "png", filename="logo.png", disposition="inline", cid="<logo.png@01DA>"
    )
    message.add_attachment(JPEG, "image", "jpeg", filename="photo.jpg", cid="<photo@01DA>")
    stored = deliver(message.as_bytes(), address)
    assert stored.state == "sent", stored.reason
    uploads = [media_upload(r) for r in meta.requests if r[0].endswith("/media")]
    assert [u["file.filename"] for u in uploads] == ["photo.jpg"]
    assert [s["type"] for s in meta.sends()] == ["text", "image"]
    assert meta.sends()[0]["text"]["body"] == "See the photo."


def test_outlooks_related_logo_is_not_sent(conversation, address, meta) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = f"RM <{RM}>", address, SUBJECT
    message["Message-ID"] = make_msgid("reply", "bank.example")
    alternative = MIMEPart()
    alternative.set_content("Thanks, noted.\n")
    alternative.add_alternative(
        '<p>Thanks, noted.</p><img src="cid:image001.png@01DA8A">', subtype="html"
    )
    message.make_related()
    message.attach(alternative)
    message.add_related(PNG, "image", "png", cid="<image001.png@01DA8A>")
    deliver(message.as_bytes(), address)
    assert paths(meta) == ["messages"]
    assert meta.sends()[0]["text"]["body"] == "Thanks, noted."


def test_all_uploads_happen_before_the_first_send(conversation, address, meta) -> None:
    raw = reply_email(
        address,
        "Your statement and chart.",
        files=((PDF, "application/pdf", "statement.pdf"), (JPEG, "image/jpeg", "chart.jpg")),
    )
    stored = deliver(raw, address)
    assert stored.state == "sent", stored.reason
    assert paths(meta) == ["media", "media", "messages", "messages", "messages"]
    assert [s["type"] for s in meta.sends()] == ["text", "document", "image"]
    assert meta.sends()[1]["document"]["id"] == "900001"
    assert meta.sends()[2]["image"]["id"] == "900002"


def test_a_refused_upload_sends_nothing_and_says_so(conversation, address, meta, smtp) -> None:
    meta.handler.plan.extend(
        [
            (200, {"id": "700001"}),  # the first file
            (400, {"error": {"code": 131053, "message": "Media upload error"}}),  # the second
        ]
    )
    raw = reply_email(
        address,
        "Statement and chart attached.",
        files=((PDF, "application/pdf", "s.pdf"), (JPEG, "image/jpeg", "chart.jpg")),
    )
    stored = deliver(raw, address)
    assert paths(meta) == ["media", "media"]
    assert meta.sends() == []  # the client saw nothing of it
    assert not Outbound.objects.exists()
    assert stored.state == "refused"
    assert "'chart.jpg'" in stored.reason
    notice, text = only_notice(smtp)
    assert notice["Subject"] == "Your WhatsApp reply was not sent"
    assert "WhatsApp did not accept the attachment 'chart.jpg'" in text
    assert "131053 Media upload error" in text


def test_apple_mails_attachment_is_sent(conversation, address, meta, smtp) -> None:
    encoded = base64.b64encode(PDF).decode()
    raw = (
        f"From: Robert Miller <{RM}>\r\nTo: {address}\r\nSubject: {SUBJECT}\r\n"
        "Message-ID: <apple-1@bank.example>\r\nMime-Version: 1.0 (Mac OS X Mail 16.0)\r\n"
        'Content-Type: multipart/alternative; boundary="Apple-Mail=_A"\r\n\r\n'
        "--Apple-Mail=_A\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "Here is your statement.\r\n\r\n"
        '--Apple-Mail=_A\r\nContent-Type: multipart/mixed; boundary="Apple-Mail=_B"\r\n\r\n'
        "--Apple-Mail=_B\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n"
        "<html><body><div>Here is your statement.</div></body></html>\r\n"
        "--Apple-Mail=_B\r\nContent-Disposition: attachment; filename=statement.pdf\r\n"
        'Content-Type: application/pdf; name="statement.pdf"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n"
        "--Apple-Mail=_B\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n"
        "<html><body><div></div></body></html>\r\n--Apple-Mail=_B--\r\n\r\n--Apple-Mail=_A--\r\n"
    ).encode()
    deliver(raw, address)
    assert meta.sends()[0]["text"]["body"] == "Here is your statement."
    assert [s["type"] for s in meta.sends()] == ["text", "document"]


# --- the reply address and the sender ------------------------------------------------------


def tampered(address: str) -> str:
    local, _, domain = address.partition("@")
    last = "a" if local[-1] != "a" else "b"
    return f"{local[:-1]}{last}@{domain}"


def test_a_tampered_signature_is_refused_with_a_notice(conversation, address, meta, smtp) -> None:
    raw = reply_email(tampered(address))
    stored = deliver(raw, tampered(address))
    assert stored.state == "refused"
    assert "reply address is not valid" in stored.reason
    assert stored.conversation is None
    assert meta.requests == []
    assert not Outbound.objects.exists()
    notice, text = only_notice(smtp)
    assert notice["Subject"] == "Your WhatsApp reply was not sent"
    assert "The reply address is not valid" in text
    assert SUBJECT not in text  # who is not known to be staff is not shown what they wrote
    assert notice["In-Reply-To"] == str(inbound.parse(raw)["Message-ID"])


def test_another_conversations_id_with_this_signature_is_refused(
    conversation, address, capture, meta, smtp
) -> None:
    other = capture(text_body("Hi", wamid="wamid.OTHER", sender="447700900999"))
    assert other.pk != conversation.pk
    signature = address.partition("@")[0].partition(".")[2]
    forged = f"reply+c{other.pk}.{signature}@reply.bank.example"
    stored = deliver(reply_email(forged), forged)
    assert stored.state == "refused"
    assert stored.conversation is None
    assert meta.requests == []
    _, text = only_notice(smtp)
    assert "not valid" in text


def test_a_reply_address_on_another_domain_is_refused(conversation, address, meta, smtp) -> None:
    elsewhere = address.replace("@reply.bank.example", "@reply.other.example")
    stored = deliver(reply_email(elsewhere), elsewhere)
    assert stored.state == "refused"
    assert "not valid" in stored.reason
    assert meta.requests == []
    assert len(smtp.received) == 1


def test_an_email_to_no_reply_address_is_refused(conversation, meta, smtp) -> None:
    stored = deliver(reply_email("someone@reply.bank.example"), "someone@reply.bank.example")
    assert stored.state == "refused"
    assert "only takes replies to ClientWindow notifications" in stored.reason
    assert meta.requests == []
    assert len(smtp.received) == 1


def test_the_address_is_found_in_the_headers_without_an_envelope(
    conversation, address, meta
) -> None:
    """IMAP and some webhooks give no envelope: To/Cc name the conversation."""
    raw = reply_email(f"Other <someone@bank.example>, Jane <{address}>")
    stored = deliver(raw, None)
    assert stored.state == "sent", stored.reason
    assert stored.conversation == conversation
    assert len(meta.sends()) == 1


def test_an_address_signed_before_a_key_rotation_still_works(
    conversation, meta, smtp, settings
) -> None:
    settings.SECRET_KEY = "the-key-before-rotation-" + "x" * 40
    old = reply_address(conversation.pk)
    settings.SECRET_KEY = "the-key-after-rotation-" + "y" * 40
    assert reply_address(conversation.pk) != old
    refused = deliver(reply_email(old), old)
    assert refused.state == "refused"
    settings.SECRET_KEY_FALLBACKS = ["the-key-before-rotation-" + "x" * 40]
    stored = deliver(reply_email(old), old)
    assert stored.state == "sent", stored.reason
    assert len(meta.sends()) == 1


def test_an_unknown_sender_is_refused_with_a_notice(conversation, address, meta, smtp) -> None:
    raw = reply_email(address, "Send me the money", sender="Mallory <mallory@evil.example>")
    stored = deliver(raw, address, envelope_from="mallory@evil.example")
    assert stored.state == "refused"
    assert stored.conversation == conversation  # the address was valid
    assert "mallory@evil.example may not reply to this client" in stored.reason
    assert meta.requests == []
    _, text = only_notice(smtp, to="mallory@evil.example")
    assert "may not reply to this client" in text


def test_an_allowed_reply_sender_may_reply(conversation, address, route, meta) -> None:
    route.reply_senders = ["Assistant@Bank.example"]
    route.save()
    raw = reply_email(address, "Confirmed.", sender="Assistant <assistant@bank.example>")
    stored = deliver(raw, address)
    assert stored.state == "sent", stored.reason
    assert Outbound.objects.get().sender == "assistant@bank.example"
    assert meta.sends()[0]["text"]["body"] == "Confirmed."


def test_a_route_user_may_reply_and_is_named(conversation, address, route, meta) -> None:
    user = User.objects.create_user("robert", email="Robert.Miller@bank.example")
    route.users.add(user)
    raw = reply_email(address, "On it.", sender="Robert <robert.miller@BANK.example>")
    stored = deliver(raw, address)
    assert stored.state == "sent", stored.reason
    assert stored.user == user
    sent = Outbound.objects.get()
    assert sent.user == user
    assert fields(sent.send_entry)["user"] == user.pk
    assert fields(stored.entry)["user"] == user.pk


def test_an_inactive_route_user_may_not_reply(conversation, address, route, meta, smtp) -> None:
    user = User.objects.create_user("gone", email="gone@bank.example", is_active=False)
    route.users.add(user)
    stored = deliver(reply_email(address, sender="gone@bank.example"), address)
    assert stored.state == "refused"
    assert meta.requests == []
    only_notice(smtp, to="gone@bank.example")


def test_a_recipient_with_a_portal_account_is_named(conversation, address, meta) -> None:
    user = User.objects.create_user("rm", email="RM@bank.example")
    stored = deliver(reply_email(address), address)
    assert stored.state == "sent", stored.reason
    assert stored.user == user
    assert Outbound.objects.get().user == user


def test_case_differences_in_addresses_do_not_matter(conversation, address, meta) -> None:
    shouted = address.upper()
    raw = reply_email(shouted, "Noted.", sender="ROBERT MILLER <RM@BANK.EXAMPLE>")
    stored = deliver(raw, shouted)
    assert stored.state == "sent", stored.reason
    assert stored.sender == RM
    assert meta.sends()[0]["text"]["body"] == "Noted."


def test_a_conversations_own_route_decides_who_may_reply(
    conversation, address, channel, meta, smtp
) -> None:
    Route.objects.create(
        channel=channel, conversation=conversation, email_recipients=["assigned@bank.example"]
    )
    refused = deliver(reply_email(address), address)
    assert refused.state == "refused"
    assert meta.requests == []
    allowed = deliver(reply_email(address, sender="assigned@bank.example"), address)
    assert allowed.state == "sent", allowed.reason
    assert len(meta.sends()) == 1


def test_an_inactive_route_takes_no_replies(conversation, address, route, meta, smtp) -> None:
    route.active = False
    route.save()
    stored = deliver(reply_email(address), address)
    assert stored.state == "refused"
    assert meta.requests == []


# --- the 24-hour window and templates ------------------------------------------------------


@pytest.fixture
def quiet_conversation(capture: Any, route: Route, smtp: Any, meta: Any) -> Conversation:
    """The client last wrote 25 hours ago: the window is closed."""
    return capture(
        text_body("Please sell", wamid="wamid.OLD1", timestamp=int(time.time()) - 25 * 3600)
    )


@pytest.fixture
def template(channel: Any) -> MessageTemplate:
    return MessageTemplate.objects.create(
        channel=channel,
        name="account_update",
        language="en",
        body="Hello {{1}}, {{2}}. Reply to continue.",
    )


def test_a_closed_window_is_refused_with_a_notice_about_templates(
    quiet_conversation, meta, smtp
) -> None:
    address = reply_address(quiet_conversation.pk)
    stored = deliver(reply_email(address, "Sold at 101."), address)
    assert stored.state == "refused"
    assert stored.conversation == quiet_conversation
    assert meta.requests == []
    assert not Outbound.objects.exists()
    _, text = only_notice(smtp)
    assert "24-hour customer-service window is closed" in text
    assert "approved template" in text
    assert fields(stored.entry)["accepted"] is False


def test_a_template_command_sends_the_template_even_when_the_window_is_closed(
    quiet_conversation, template, meta, smtp
) -> None:
    address = reply_address(quiet_conversation.pk)
    raw = reply_email(
        address,
        "/template account_update | Jane | your statement is ready\n\n-- \nRobert Miller\n",
    )
    stored = deliver(raw, address)
    assert stored.state == "sent", stored.reason
    assert meta.sends() == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CLIENT,
            "type": "template",
            "template": {
                "name": "account_update",
                "language": {"code": "en"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Jane"},
                            {"type": "text", "text": "your statement is ready"},
                        ],
                    }
                ],
            },
        }
    ]
    sent = Outbound.objects.get()
    assert sent.type == "template"
    assert sent.message.text == "account_update Jane your statement is ready"
    assert smtp.received == []


def test_a_template_command_picks_the_language_asked_for(
    quiet_conversation, template, channel, meta
) -> None:
    MessageTemplate.objects.create(
        channel=channel, name="account_update", language="de", body="Hallo {{1}}, {{2}}."
    )
    address = reply_address(quiet_conversation.pk)
    deliver(reply_email(address, "/template account_update de | Jane | bereit"), address)
    (body,) = meta.sends()
    assert body["template"]["language"] == {"code": "de"}


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("/template account_update | Jane", "takes 2 parameter(s), not 1"),
        ("/template account_update | a | b | c", "takes 2 parameter(s), not 3"),
        ("/template no_such_template | Jane | x", "no approved template named 'no_such_template'"),
        ("/template account_update fr | Jane | x", "no approved template named 'account_update'"),
    ],
    ids=["too-few", "too-many", "unknown", "unknown-language"],
)
def test_a_wrong_template_command_is_refused(
    quiet_conversation, template, meta, smtp, command, why
) -> None:
    address = reply_address(quiet_conversation.pk)
    stored = deliver(reply_email(address, command), address)
    assert stored.state == "refused"
    assert why in stored.reason
    assert meta.requests == []
    _, text = only_notice(smtp)
    assert why in text


def test_an_inactive_template_is_refused(quiet_conversation, template, meta, smtp) -> None:
    template.active = False
    template.save()
    address = reply_address(quiet_conversation.pk)
    stored = deliver(reply_email(address, "/template account_update | a | b"), address)
    assert stored.state == "refused"
    assert meta.requests == []


def test_a_template_command_without_spaces_around_the_bars(
    quiet_conversation, template, meta
) -> None:
    address = reply_address(quiet_conversation.pk)
    stored = deliver(reply_email(address, "/template account_update|Jane|ready"), address)
    assert stored.state == "sent", stored.reason


# --- automatic emails and copies: never answered, never sent twice ------------------------


@pytest.mark.parametrize(
    "headers",
    [
        (("Auto-Submitted", "auto-replied"),),
        (("Auto-Submitted", "auto-generated"),),
        (("Precedence", "bulk"),),
        (("Precedence", "Junk"),),
        (("Precedence", "auto_reply"),),
        (("X-Autoreply", "yes"),),
        (("X-Autorespond", "Out of office"),),
    ],
    ids=lambda h: f"{h[0][0]}={h[0][1]}",
)
def test_automatic_replies_are_ignored_silently(conversation, address, meta, smtp, headers) -> None:
    raw = reply_email(address, "I am out of the office until Monday.", headers=headers)
    stored = deliver(raw, address)
    assert stored.state == "ignored"
    assert "automatic" in stored.reason
    assert meta.requests == []
    assert smtp.received == []
    assert fields(stored.entry)["kind"] == "email.inbound"
    assert content(stored.entry, "raw") == raw


def test_a_delivery_report_is_ignored_silently(conversation, address, meta, smtp) -> None:
    raw = (
        f"From: Mail Delivery System <MAILER-DAEMON@bank.example>\r\nTo: {address}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-1@bank.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
        'boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n'
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.bank.example"
        "\r\n\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed\r\nStatus: 5.1.1\r\n--B--\r\n"
    ).encode()
    stored = deliver(raw, address, envelope_from="<>")
    assert stored.state == "ignored"
    assert meta.requests == []
    assert smtp.received == []


def test_our_own_notice_coming_back_is_ignored(conversation, address, meta, smtp) -> None:
    """A notice forwarded or bounced back to a reply address never starts a loop."""
    deliver(reply_email(address, sender="mallory@evil.example"), address)
    (notice,) = smtp.received
    returned = notice.raw.replace(b"To: mallory@evil.example", f"To: {address}".encode())
    stored = deliver(returned, address, envelope_from="clientwindow@bank.example")
    assert stored.state == "ignored"
    assert len(smtp.received) == 1
    assert meta.requests == []


def test_auto_submitted_no_is_an_ordinary_reply(conversation, address, meta) -> None:
    raw = reply_email(address, "Sold.", headers=(("Auto-Submitted", "No"),))
    stored = deliver(raw, address)
    assert stored.state == "sent", stored.reason
    assert len(meta.sends()) == 1


def test_a_plain_bounce_with_a_null_sender_gets_no_notice(conversation, address, smtp) -> None:
    raw = (
        f"From: MAILER-DAEMON@relay.example (Mail Delivery System)\r\nTo: {address}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b2@relay.example>\r\n\r\n"
        "This is the mail system at host relay.example. Your message could not be delivered.\r\n"
    ).encode()
    stored = deliver(raw, address, envelope_from="<>")
    assert stored.state != "sent"
    assert smtp.received == []


def test_the_same_email_twice_is_sent_once(conversation, address, meta, smtp) -> None:
    raw = reply_email(address, "Sold at 101.")
    first = inbound.receive(raw, "smtp", RM, [address])
    second = inbound.receive(raw + b"\r\n", "smtp", RM, [address])  # a relay's retry
    assert inbound.process_pending() == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == "sent", first.reason
    assert second.state == "ignored"
    assert second.reason == f"a copy of reply email {first.pk}"
    assert len(meta.sends()) == 1
    assert smtp.received == []
    third = deliver(raw, address)  # later (IMAP after a crash)
    assert third.state == "ignored"
    assert len(meta.sends()) == 1


def test_an_email_already_claimed_is_not_processed_again(conversation, address, meta) -> None:
    """A crash after claiming leaves it "processing": never picked up, never resent."""
    stored = inbound.receive(reply_email(address), "smtp", RM, [address])
    InboundEmail.objects.filter(pk=stored.pk).update(state="processing")
    assert inbound.process_pending() == 0
    assert meta.requests == []


# --- Meta refuses, or does not answer ------------------------------------------------------


def test_metas_refusal_is_sealed_and_told(conversation, address, meta, smtp) -> None:
    meta.handler.plan.append((400, RE_ENGAGEMENT))
    stored = deliver(reply_email(address, "Sold at 101."), address)
    assert len(meta.sends()) == 1
    sent = Outbound.objects.get()
    assert sent.state == "failed"
    assert sent.message is None
    assert "131047" in sent.error and "Re-engagement message" in sent.error
    assert sent.response == RE_ENGAGEMENT
    failed = sent.result_entry
    assert failed.kind == "message.send_failed"
    assert fields(failed)["outcome"] == "refused"
    assert fields(failed)["send_seq"] == sent.send_entry_id
    assert b"131047" in content(failed, "error")
    assert json.loads(content(failed, "response")) == RE_ENGAGEMENT
    assert RetentionRecord.objects.get(entry_id=failed.seq).kind == "message.send_failed"
    assert stored.state == "refused"
    assert not Message.objects.filter(direction="out").exists()
    notice, text = only_notice(smtp)
    assert notice["Subject"] == "Your WhatsApp reply was not (fully) sent"
    assert "WhatsApp refused it" in text
    assert "131047" in text and "more than 24 hours have passed" in text


def test_a_part_refused_after_another_went_is_partial(conversation, address, meta, smtp) -> None:
    meta.handler.plan.extend(
        [
            (200, {"id": "4242"}),  # the upload, before anything is sent
            (200, {"messages": [{"id": "wamid.OUTTEXT"}]}),  # the text
            (400, {"error": {"code": 131053, "message": "Media upload error"}}),  # the file
        ]
    )
    raw = reply_email(address, "See attached.", files=((PDF, "application/pdf", "s.pdf"),))
    stored = deliver(raw, address)
    assert stored.state == "partial"
    assert [o.state for o in Outbound.objects.order_by("id")] == ["sent", "failed"]
    assert meta.sends()[1]["document"]["id"] == "4242"
    _, text = only_notice(smtp)
    assert "1 of 2 part(s) of your reply went to the client; the rest did not" in text
    assert "131053" in text


@pytest.fixture
def slow_sends(meta: Any, settings: Any, monkeypatch: Any) -> float:
    """Meta answers /messages only after the client gave up waiting (timeout 1 s)."""
    settings.WHATSAPP_HTTP_TIMEOUT = 1
    delay = 2.5
    answer = meta.handler.do_POST

    def slow(handler: Any) -> None:
        if handler.path.endswith("/messages"):
            time.sleep(delay)
        answer(handler)

    monkeypatch.setattr(meta.handler, "do_POST", slow)
    return delay


def test_a_timeout_is_unknown_and_never_resent(
    conversation, address, meta, smtp, slow_sends
) -> None:
    stored = deliver(reply_email(address, "Sold at 101."), address)
    sent = Outbound.objects.get()
    assert sent.state == "unknown"
    assert "interrupted" in sent.error
    assert fields(sent.result_entry)["outcome"] == "unknown"
    _, text = only_notice(smtp)
    assert "did not confirm" in text and "not sent again" in text
    time.sleep(slow_sends)
    assert len(meta.sends()) == 1  # it did reach Meta
    assert inbound.process_pending() == 0
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1)):
        assert outbound.recover_interrupted() == 0
    time.sleep(0.2)
    assert len(meta.sends()) == 1
    stored.refresh_from_db()
    assert stored.state != "sent"


# --- evidence --------------------------------------------------------------------------------


def test_a_sent_reply_is_sealed_as_email_request_and_message(
    conversation, address, meta, capture
) -> None:
    before = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
    raw = reply_email(address, "Done, sold at 101.")
    stored = deliver(raw, address)
    sealed = list(LedgerEntry.objects.filter(seq__gt=before).order_by("seq"))
    assert [e.kind for e in sealed] == ["email.inbound", "message.send", "message"]
    email, request, message = sealed

    assert stored.entry == email
    assert fields(email) | {"received_at": None} == fields(email) | {
        "via": "smtp",
        "phone_number_id": PNID,
        "conversation_seq": conversation.entry_id,
        "accepted": True,
        "user": None,
        "received_at": None,
    }
    assert content(email, "raw") == raw
    assert content(email, "sender") == RM.encode()
    assert content(email, "message_id") == str(inbound.parse(raw)["Message-ID"]).encode()

    sent = Outbound.objects.get()
    assert sent.send_entry == request
    request_fields = fields(request)
    assert request_fields["source"] == "email"
    assert request_fields["email_seq"] == email.seq
    assert request_fields["type"] == "text"
    assert json.loads(content(request, "request")) == meta.sends()[0]

    assert sent.result_entry == message == sent.message.entry
    message_fields = fields(message)
    assert message_fields["direction"] == "out"
    assert message_fields["source"] == "api"
    assert message_fields["send_seq"] == request.seq
    assert content(message, "wamid") == sent.message.wamid.encode()
    assert content(message, "text") == b"Done, sold at 101."

    for entry in sealed:
        record = RetentionRecord.objects.get(entry_id=entry.seq)
        assert record.kind == entry.kind
        assert record.conversation_id == conversation.pk
        assert record.retain_until > record.sealed_at
    assert verify_ledger().intact

    rows = window(conversation).rows
    assert [r.message.direction for r in rows] == ["in", "out"]
    out = rows[-1].message
    assert out == sent.message
    assert out.source == "api"
    assert out.payload["text"]["body"] == "Done, sold at 101."
    assert out.payload["to"] == CLIENT
    assert out.payload["id"] == out.wamid == "wamid.OUT000001"

    status = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA-1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "1", "phone_number_id": PNID},
                            "statuses": [
                                {
                                    "id": out.wamid,
                                    "status": "delivered",
                                    "timestamp": str(int(time.time())),
                                    "recipient_id": CLIENT,
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    capture(json.dumps(status).encode())
    event = StatusEvent.objects.get(wamid=out.wamid)
    assert event.status == "delivered"
    assert event.entry.kind == "message.status"
    assert RetentionRecord.objects.filter(entry_id=event.entry_id).exists()
    assert Message.objects.filter(wamid=out.wamid).count() == 1
    assert verify_ledger().intact


def test_a_refused_email_is_sealed_with_its_reason(conversation, address, meta) -> None:
    raw = reply_email(address, sender="mallory@evil.example")
    stored = deliver(raw, address)
    assert stored.entry.kind == "email.inbound"
    assert fields(stored.entry)["accepted"] is False
    assert content(stored.entry, "raw") == raw
    assert content(stored.entry, "decision") == stored.reason.encode()
    record = RetentionRecord.objects.get(entry_id=stored.entry_id)
    assert record.kind == "email.inbound"
    assert record.conversation_id == conversation.pk


def test_every_entry_a_failed_file_send_seals_has_a_retention_record(
    conversation, address, meta
) -> None:
    meta.handler.plan.extend(
        [(200, {"id": "5151"}), (400, {"error": {"code": 131053, "message": "Media error"}})]
    )
    before = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
    deliver(reply_email(address, None, files=((PDF, "application/pdf", "s.pdf"),)), address)
    sealed = LedgerEntry.objects.filter(seq__gt=before)
    kinds = sorted(e.kind for e in sealed)
    assert kinds == ["email.inbound", "media.file", "message.send", "message.send_failed"]
    unrecorded = [
        e.kind for e in sealed if not RetentionRecord.objects.filter(entry_id=e.seq).exists()
    ]
    assert unrecorded == []


# --- provider webhooks (django-anymail) ----------------------------------------------------


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def sendgrid_post(client: Any, raw: bytes, address: str, auth: str | None) -> Any:
    headers = {"HTTP_AUTHORIZATION": basic(auth)} if auth else {}
    return client.post(
        reverse("bridge:sendgrid_inbound_webhook"),
        {
            "email": raw.decode(),
            "envelope": json.dumps({"to": [address], "from": RM}),
            "charsets": json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8"}),
        },
        **headers,
    )


def postmark_post(client: Any, raw: bytes, address: str, auth: str | None = "user:pass") -> Any:
    headers = {"HTTP_AUTHORIZATION": basic(auth)} if auth else {}
    body = {
        "FromFull": {"Email": RM, "Name": "Robert Miller"},
        "OriginalRecipient": address,
        "Headers": [{"Name": "Return-Path", "Value": f"<{RM}>"}],
        "RawEmail": raw.decode(),
        "MessageID": "22c74902-a0c1-4511-804f-341342852c90",
    }
    return client.post(
        reverse("bridge:postmark_inbound_webhook"),
        json.dumps(body),
        content_type="application/json",
        **headers,
    )


@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
def test_a_sendgrid_inbound_parse_post_is_kept_and_sent(
    client, conversation, address, meta, settings
) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    raw = reply_email(address, "Sold at 101.\n\nOn Mon, Jane wrote:\n> Please sell\n")
    assert reverse("bridge:sendgrid_inbound_webhook") == "/email/inbound/sendgrid/inbound/"
    response = sendgrid_post(client, raw, address, "user:pass")
    assert response.status_code == 200
    stored = InboundEmail.objects.get(via="webhook")
    assert stored.state == "pending"
    assert stored.envelope_to == [address]
    assert stored.envelope_from == RM
    assert stored.message_id == str(inbound.parse(raw)["Message-ID"])
    assert inbound.parse(bytes(stored.raw))["Subject"] == SUBJECT
    assert inbound.process_pending() == 1
    stored.refresh_from_db()
    assert stored.state == "sent", stored.reason
    assert meta.sends()[0]["text"]["body"] == "Sold at 101."
    assert Outbound.objects.get().email == stored


def test_a_postmark_inbound_post_is_kept_and_sent(
    client, conversation, address, meta, settings
) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    raw = reply_email(address, None, files=((PDF, "application/pdf", "statement.pdf"),))
    response = postmark_post(client, raw, address)
    assert response.status_code == 200
    stored = InboundEmail.objects.get(via="webhook")
    assert stored.envelope_to == [address]
    inbound.process_pending()
    stored.refresh_from_db()
    assert stored.state == "sent", stored.reason
    assert paths(meta) == ["media", "messages"]
    assert media_upload(meta.requests[0])["file"] == PDF


@pytest.mark.parametrize("secret", ["", None])
def test_the_webhooks_do_not_exist_without_a_secret(
    client, conversation, address, meta, settings, secret
) -> None:
    settings.ANYMAIL = {} if secret is None else {"WEBHOOK_SECRET": secret}
    raw = reply_email(address)
    assert postmark_post(client, raw, address).status_code == 404
    assert postmark_post(client, raw, address, auth=None).status_code == 404
    assert not InboundEmail.objects.filter(via="webhook").exists()


@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
@pytest.mark.parametrize("auth", [None, "user:wrong", "other:pass"])
def test_the_webhooks_refuse_wrong_credentials(
    client, conversation, address, meta, settings, auth
) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    raw = reply_email(address)
    assert sendgrid_post(client, raw, address, auth).status_code in (400, 401, 403)
    assert postmark_post(client, raw, address, auth).status_code in (400, 401, 403)
    assert not InboundEmail.objects.filter(via="webhook").exists()
    assert inbound.process_pending() == 0
    assert meta.requests == []


def test_a_webhook_reply_with_a_2_mb_attachment_is_accepted(
    client, conversation, address, meta, settings
) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    big = PDF + bytes(2 * 1024 * 1024)
    assert len(big) < settings.MAIL_MAX_BYTES
    raw = reply_email(address, "Statement attached.", files=((big, "application/pdf", "s.pdf"),))
    response = postmark_post(client, raw, address)
    assert response.status_code == 200


def test_a_webhook_reply_larger_than_mail_max_bytes_is_not_sent(
    client, conversation, address, meta, settings
) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    settings.MAIL_MAX_BYTES = 4096
    raw = reply_email(address, "Attached.", files=((PDF * 4, "application/pdf", "s.pdf"),))
    assert len(raw) > settings.MAIL_MAX_BYTES
    postmark_post(client, raw, address)
    inbound.process_pending()
    assert meta.requests == []
