"""The reply address (bridge/tokens.py) as a reply email meets it: signed for one
conversation, on our domain, found in the envelope or the headers, valid across key rotation."""

import pytest

from bridge import inbound
from bridge.models import Outbound
from bridge.tokens import reply_address
from tests.bridge.conftest import text_body
from tests.bridge.reply_emails import SUBJECT, deliver, only_notice, reply_email

pytestmark = pytest.mark.usefixtures("only_this_tests_emails")


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
