"""What a staff reply email sends and seals (bridge/inbound.py with bridge/outbound.py):
templates and the 24-hour window, Meta's refusals and silences, and the evidence."""

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from archive.models import LedgerEntry
from archive.verify import verify_ledger
from bridge import inbound, outbound
from bridge.models import MessageTemplate, Outbound, Route
from bridge.tokens import reply_address
from messaging.models import Conversation, Message, StatusEvent
from retention.models import RetentionRecord
from review.transcript import window
from tests.bridge.conftest import CLIENT, PNID, text_body
from tests.bridge.reply_emails import (
    PDF,
    RE_ENGAGEMENT,
    RM,
    content,
    deliver,
    fields,
    only_notice,
    reply_email,
)

pytestmark = pytest.mark.usefixtures("only_this_tests_emails")


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
