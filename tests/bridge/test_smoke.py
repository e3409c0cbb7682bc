"""End to end: a client message reaches staff by email and the journal; a staff reply by email
goes to the client through the Cloud API."""

from bridge import dispatch, inbound
from bridge.models import InboundEmail, Notification, Outbound
from bridge.tokens import reply_address
from messaging.models import Message
from tests.bridge.conftest import CLIENT, text_body


def test_message_to_email_and_journal_and_reply_back(capture, route, smtp, meta):
    conversation = capture(text_body("Please sell <b>100</b> shares", wamid="wamid.A1"))
    assert dispatch.run() == 2
    received = smtp.wait(2)
    by_rcpt = {tuple(r.rcpt_tos): r for r in received}
    staff = by_rcpt[("rm@bank.example", "desk@bank.example")].message
    assert staff["Reply-To"] == reply_address(conversation.pk)
    assert "Jane Client" in staff["From"]
    text = staff.get_body(("plain",)).get_content()
    assert "Please sell <b>100</b> shares" in text
    html = staff.get_body(("html",)).get_content()
    assert "&lt;b&gt;100&lt;/b&gt;" in html
    journal = by_rcpt[("journal@archive.bank.example",)].message
    assert "Please sell" in journal.get_body(("plain",)).get_content()
    assert set(Notification.objects.values_list("state", flat=True)) == {"sent"}

    # (the gateway's own path, with committed rows, is tests/bridge/test_gateway.py)
    raw = (
        f"From: RM <rm@bank.example>\r\nTo: {reply_address(conversation.pk)}\r\n"
        "Subject: Re: WhatsApp\r\nMessage-ID: <r1@bank.example>\r\n\r\n"
        "Done, sold at 101.\r\n\r\nOn Mon, Jane wrote:\r\n> Please sell\r\n"
    ).encode()
    inbound.receive(raw, "smtp", "rm@bank.example", [reply_address(conversation.pk)])
    assert inbound.process_pending() == 1
    stored = InboundEmail.objects.get()
    assert stored.state == "sent", stored.reason
    (sent,) = meta.sends()
    assert sent["to"] == CLIENT and sent["text"]["body"] == "Done, sold at 101."
    outbound = Outbound.objects.get()
    assert outbound.message.direction == "out" and outbound.message.text == "Done, sold at 101."
    assert Message.objects.filter(source="api").count() == 1
