"""Staff replies by email, to the client on WhatsApp (bridge/inbound.py): what is sent (the
reply's own words, its attachments), who may send it, and which emails are never answered
or sent twice.

Emails come in through `bridge.inbound.receive` (what the SMTP gateway, the provider webhooks and
IMAP polling all call) and are processed by `process_pending()`; the Graph API is the local
`meta` server, notices to senders arrive at the local `smtp` server."""

import base64
from email.message import EmailMessage, MIMEPart
from email.utils import make_msgid

import pytest
from django.contrib.auth.models import User

from bridge import inbound
from bridge.models import InboundEmail, Outbound, Route
from tests.bridge.conftest import CLIENT, PNID
from tests.bridge.reply_emails import (
    JPEG,
    PDF,
    PNG,
    RM,
    SUBJECT,
    content,
    deliver,
    fields,
    media_upload,
    only_notice,
    paths,
    reply_email,
)

pytestmark = pytest.mark.usefixtures("only_this_tests_emails")


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


# --- the sender -----------------------------------------------------------------------------


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
