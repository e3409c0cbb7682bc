"""What the bridge seals is under retention like everything captured: every reply email, send
request and refused send gets its channel's policy, legal holds keep them with their messages,
and retention_dispose() blanks them (and only it may)."""

from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, connection, connections

from archive.models import LedgerEntry
from archive.verify import verify_ledger
from bridge import inbound
from bridge.models import InboundEmail, Outbound
from bridge.tokens import reply_address
from messaging.models import Channel, Message
from retention import disposition
from retention.models import HoldItem, RetentionRecord
from tests.bridge.conftest import PNID, TOKEN, text_body
from tests.retention.conftest import expire_all, hold, make_policy

pytestmark = pytest.mark.usefixtures("committed")


@pytest.fixture
def channel(committed: None) -> Channel:
    """Committed (the superuser's calendar in tests/retention/conftest.py reads committed rows)."""
    return Channel.objects.create(
        name="Private banking",
        phone_number_id=PNID,
        display_number="+44 20 7946 0000",
        access_token=TOKEN,
    )


def reply(conversation_id: int, text: str, message_id: str) -> bytes:
    return (
        f"From: RM <rm@bank.example>\r\nTo: {reply_address(conversation_id)}\r\n"
        f"Subject: Re: WhatsApp\r\nMessage-ID: <{message_id}@bank.example>\r\n\r\n{text}\r\n"
    ).encode()


def sent_reply(capture: Any, text: str = "Sold at 101.") -> tuple[Any, InboundEmail, Outbound]:
    conversation = capture(text_body("Sell 100 please", wamid="wamid.RET1"))
    stored = inbound.receive(reply(conversation.pk, text, "ret1"), "smtp")
    inbound.process_pending()
    stored.refresh_from_db()
    return conversation, stored, Outbound.objects.get(email=stored)


def kinds_of(seqs: set[int]) -> dict[int, str]:
    return dict(LedgerEntry.objects.filter(seq__in=seqs).values_list("seq", "kind"))


def test_every_bridge_record_gets_its_channels_policy(capture, route, smtp, meta, channel):
    policy = make_policy("Brokerage", 2191, [channel])
    _, stored, outbound = sent_reply(capture)
    assert stored.state == "sent" and outbound.state == "sent"
    seqs = {stored.entry_id, outbound.send_entry_id, outbound.message.entry_id}
    records = {r.entry_id: r for r in RetentionRecord.objects.filter(entry_id__in=seqs)}
    assert {records[s].kind for s in seqs} == {"email.inbound", "message.send", "message"}
    for record in records.values():
        assert record.policy_id == policy.pk
        assert record.channel_id == channel.pk
        assert (record.retain_until - record.sealed_at).days == 2191
    # the sent message keeps its conversation and client at least as long
    conversation = outbound.conversation
    kept = RetentionRecord.objects.get(entry_id=conversation.entry_id)
    assert kept.retain_until >= records[outbound.message.entry_id].retain_until
    assert verify_ledger().intact


def test_a_refused_send_is_kept_too(capture, route, smtp, meta, channel):
    meta.handler.plan.append((400, {"error": {"code": 131047, "message": "Re-engagement"}}))
    _, stored, outbound = sent_reply(capture)
    assert outbound.state == "failed" and stored.state == "refused"
    record = RetentionRecord.objects.get(entry_id=outbound.result_entry_id)
    assert record.kind == "message.send_failed"


def test_a_hold_keeps_the_reply_email_and_the_send_request(capture, route, smtp, meta):
    conversation, stored, outbound = sent_reply(capture)
    refused = inbound.receive(reply(conversation.pk, "", "empty"), "smtp")  # nothing to send
    inbound.process_pending()
    refused.refresh_from_db()
    assert refused.state == "refused"
    matter = hold(conversations=[conversation.pk])
    held = set(HoldItem.objects.filter(hold=matter).values_list("entry_id", flat=True))
    kinds = kinds_of(held)
    assert outbound.send_entry_id in held and kinds[outbound.send_entry_id] == "message.send"
    assert stored.entry_id in held and refused.entry_id in held
    assert outbound.message.entry_id in held


def test_disposition_blanks_reply_emails_and_send_requests(capture, route, smtp, meta, channel):
    _, stored, outbound = sent_reply(capture, "Confidential: sold at 101.")
    expire_all()
    done = disposition.plan(None)
    assert done is not None and done.state == "done", done and done.error
    stored.refresh_from_db()
    outbound.refresh_from_db()
    assert bytes(stored.raw) == b"" and stored.sender == "" and stored.message_id == ""
    assert outbound.request == {} and outbound.response is None and outbound.sender == ""
    message = Message.objects.get(pk=outbound.message_id)
    assert message.text == "" and message.wamid.startswith("disposed:")
    disposed = RetentionRecord.objects.filter(
        entry_id__in=[stored.entry_id, outbound.send_entry_id], disposed_at__isnull=False
    )
    assert disposed.count() == 2
    assert verify_ledger().intact


def test_the_runtime_role_cannot_rewrite_a_reply_email(capture, route, smtp, meta):
    _, stored, _ = sent_reply(capture)
    with pytest.raises(Exception) as raised, connection.cursor() as cursor:
        cursor.execute("UPDATE bridge_inboundemail SET raw = 'forged' WHERE id = %s", [stored.pk])
    assert isinstance(raised.value.__cause__, psycopg.errors.InsufficientPrivilege) or (
        "permission denied" in str(raised.value) or "append_only" in str(raised.value)
    )


def test_its_blanker_is_the_owners_and_only_retention_dispose_calls_it():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_userbyid(proowner), prosecdef FROM pg_proc"
            " WHERE oid = to_regprocedure('bridge_retention_blank(bigint[])')"
        )
        assert cursor.fetchone() == (connections["owner"].settings_dict["USER"], False)
    with pytest.raises(DatabaseError, match="permission denied"), connection.cursor() as cursor:
        cursor.execute("SELECT bridge_retention_blank('{}'::bigint[])")
