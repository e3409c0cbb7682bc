"""bridge/outbound.py on its own: the media type a file goes as, the 24-hour window, who a
request is addressed to (one client, a group, a BSUID-only client), what is refused before
anything is sealed, and sends a crash interrupted (marked unknown, never resent)."""

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st

from archive.models import LedgerEntry
from bridge import outbound
from bridge.models import MessageTemplate, Outbound
from messaging import graph
from retention.models import RetentionRecord
from tests.bridge.conftest import CLIENT, PNID, text_body
from tests.messaging.conftest import fixture_bytes

MB = 1024 * 1024
MEDIA_TYPES = {"image", "video", "audio", "document"}


def author(address: str = "rm@bank.example") -> outbound.Author:
    return outbound.Author(Outbound.Source.PORTAL, None, address)


def fields(entry: LedgerEntry) -> dict[str, Any]:
    return json.loads(bytes(entry.envelope))


def now_in_body(name: str, **replace: str) -> bytes:
    """A stored webhook fixture, on our channel, sent just now."""
    body = fixture_bytes(name).decode()
    for old, new in replace.items():
        body = body.replace(old, new)
    document = json.loads(body)
    for entry in document["entry"]:
        for change in entry["changes"]:
            change["value"]["metadata"]["phone_number_id"] = PNID
            for message in change["value"].get("messages", []):
                message["timestamp"] = str(int(time.time()))
    return json.dumps(document).encode()


# --- media_type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mime", "size", "kind"),
    [
        ("image/jpeg", 1000, "image"),
        ("image/png", 5 * MB, "image"),
        ("IMAGE/PNG", 10, "image"),
        ("image/jpeg", 5 * MB + 1, "document"),
        ("image/png", 6 * MB, "document"),
        ("image/gif", 100, "document"),
        ("image/webp", 100, "document"),
        ("video/mp4", 16 * MB, "video"),
        ("video/3gpp", 1, "video"),
        ("video/mp4", 16 * MB + 1, "document"),
        ("video/quicktime", 100, "document"),
        ("audio/ogg", 100, "audio"),
        ("audio/mpeg", 16 * MB, "audio"),
        ("audio/aac", 1, "audio"),
        ("audio/ogg", 16 * MB + 1, "document"),
        ("audio/wav", 100, "document"),
        ("application/pdf", 100, "document"),
        ("application/octet-stream", 0, "document"),
        ("text/plain", 10, "document"),
        ("", 0, "document"),
    ],
)
def test_media_type_maps_mime_and_size(mime: str, size: int, kind: str) -> None:
    assert outbound.media_type(mime, size) == kind


@given(mime=st.text(max_size=80), size=st.integers(min_value=0, max_value=10**12))
def test_media_type_never_raises_and_is_always_a_whatsapp_type(mime: str, size: int) -> None:
    kind = outbound.media_type(mime, size)
    assert kind in MEDIA_TYPES
    if size > 16 * MB:
        assert kind == "document"  # nothing but a document takes more than 16 MB


@given(
    mime=st.sampled_from(outbound.IMAGE_TYPES + outbound.VIDEO_TYPES + outbound.AUDIO_TYPES),
    size=st.integers(min_value=0, max_value=200 * MB),
)
def test_media_type_sends_what_fits_as_its_own_type(mime: str, size: int) -> None:
    major = mime.split("/")[0]
    expected = {"image": "image", "video": "video", "audio": "audio"}[major]
    fits = size <= outbound.SEND_LIMITS[expected]
    assert outbound.media_type(mime, size) == (expected if fits else "document")


# --- the 24-hour window --------------------------------------------------------------------


def test_window_is_open_until_exactly_24_hours_after_the_client_wrote(capture, route) -> None:
    wrote = int(time.time()) - 3600
    conversation = capture(text_body("Hello", wamid="wamid.W1", timestamp=wrote))
    last = datetime.fromtimestamp(wrote, UTC)
    assert outbound.last_client_message(conversation) == last
    assert outbound.window_closes(conversation) == last + timedelta(hours=24)
    assert outbound.window_open(conversation, now=last)
    assert outbound.window_open(conversation, now=last + timedelta(hours=24, microseconds=-1))
    assert not outbound.window_open(conversation, now=last + timedelta(hours=24))
    assert not outbound.window_open(conversation, now=last + timedelta(days=3))


def test_window_counts_the_latest_client_message_only(capture, route) -> None:
    old = int(time.time()) - 30 * 3600
    recent = int(time.time()) - 600
    capture(text_body("Old", wamid="wamid.W2", timestamp=old))
    conversation = capture(text_body("Recent", wamid="wamid.W3", timestamp=recent))
    assert outbound.window_closes(conversation) == datetime.fromtimestamp(recent, UTC) + timedelta(
        hours=24
    )
    assert outbound.window_open(conversation)


def test_our_own_messages_do_not_open_the_window(capture, route, meta) -> None:
    """Only the client writing opens it: a message we sent (inside it) does not extend it."""
    wrote = int(time.time()) - 23 * 3600
    conversation = capture(text_body("Hello", wamid="wamid.W4", timestamp=wrote))
    (sent,) = outbound.send(conversation, [outbound.Text("Hi Jane")], author())
    assert sent.state == "sent"
    closes = datetime.fromtimestamp(wrote, UTC) + timedelta(hours=24)
    assert outbound.window_closes(conversation) == closes
    assert not outbound.window_open(conversation, now=closes)


def test_a_closed_window_refuses_text_and_files_before_anything_is_sealed(
    capture, route, meta
) -> None:
    conversation = capture(text_body("Hi", wamid="wamid.W5", timestamp=int(time.time()) - 90000))
    before = LedgerEntry.objects.count()
    for parts in (
        [outbound.Text("Hello")],
        [outbound.File(b"%PDF-1.4 x", "application/pdf", "a.pdf")],
    ):
        with pytest.raises(outbound.CannotSend, match="24-hour customer-service window"):
            outbound.send(conversation, parts, author())
    assert LedgerEntry.objects.count() == before
    assert not Outbound.objects.exists()
    assert meta.requests == []


# --- who the request is addressed to --------------------------------------------------------


def test_an_individual_is_sent_to_by_wa_id(capture, route, meta) -> None:
    conversation = capture(text_body("Hi", wamid="wamid.I1"))
    (sent,) = outbound.send(conversation, [outbound.Text("Hello Jane")], author())
    assert meta.sends() == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CLIENT,
            "type": "text",
            "text": {"preview_url": False, "body": "Hello Jane"},
        }
    ]
    path, headers, _ = meta.requests[0]
    assert path == f"/v25.0/{PNID}/messages"
    assert headers["Authorization"] == "Bearer EAAG-bridge-token"
    assert sent.state == "sent" and sent.message.wamid == "wamid.OUT000001"


def test_a_group_conversation_is_sent_to_the_group(capture, route, meta) -> None:
    conversation = capture(now_in_body("message-text-group__meta-docs-via-vaam-rs.json"))
    group = "Y2FwaV9ncm91cDoxOTUwNTU1MDA3OToxMjAzNjMzOTQzMjAdOTY0MTUZD"
    assert conversation.group_id == group
    (sent,) = outbound.send(conversation, [outbound.Text("Hello all")], author())
    (body,) = meta.sends()
    assert body["recipient_type"] == "group"
    assert body["to"] == group
    assert "recipient" not in body
    assert sent.state == "sent" and sent.message.conversation == conversation


def test_a_bsuid_only_client_is_sent_to_by_recipient(capture, route, meta) -> None:
    conversation = capture(
        now_in_body("message-text-bsuid-only-no-from__netflie-php.json", **{"wamid.ID": "wamid.B1"})
    )
    assert conversation.participant.wa_id == ""
    assert conversation.participant.user_id == "BSUID_123"
    (sent,) = outbound.send(conversation, [outbound.Text("Hello")], author())
    (body,) = meta.sends()
    assert body["recipient"] == "BSUID_123"
    assert "to" not in body
    assert sent.state == "sent"


# --- refused before anything is sealed ----------------------------------------------------


@pytest.mark.parametrize(
    "change", [{"access_token": ""}, {"active": False}], ids=["no-token", "inactive"]
)
def test_a_channel_that_cannot_send_is_refused_before_sealing(capture, route, meta, change) -> None:
    conversation = capture(text_body("Hi", wamid="wamid.C1"))
    channel = conversation.channel
    for name, value in change.items():
        setattr(channel, name, value)
    channel.save()
    before = LedgerEntry.objects.count()
    with pytest.raises(outbound.CannotSend, match="not set up to send"):
        outbound.send(conversation, [outbound.Text("Hello")], author())
    assert LedgerEntry.objects.count() == before
    assert not Outbound.objects.exists()
    assert meta.requests == []


def test_nothing_to_send_and_oversized_files_are_refused(capture, route, meta, monkeypatch) -> None:
    conversation = capture(text_body("Hi", wamid="wamid.C2"))
    with pytest.raises(outbound.CannotSend, match="nothing to send"):
        outbound.send(conversation, [], author())
    monkeypatch.setattr(outbound, "DOCUMENT_LIMIT", 10)
    big = outbound.File(b"x" * 11, "application/pdf", "big.pdf")
    with pytest.raises(outbound.CannotSend, match=r"'big\.pdf' is larger than"):
        outbound.send(conversation, [outbound.Text("and a file"), big], author())
    assert not Outbound.objects.exists()
    assert meta.requests == []


def test_a_template_of_another_channel_or_with_wrong_parameters_is_refused(
    capture, route, meta
) -> None:
    conversation = capture(text_body("Hi", wamid="wamid.C3"))
    other = type(conversation.channel).objects.create(name="Other", phone_number_id="999")
    foreign = MessageTemplate.objects.create(channel=other, name="hello", body="Hi {{1}}")
    ours = MessageTemplate.objects.create(
        channel=conversation.channel, name="hello", body="Hi {{1}}, {{2}}"
    )
    with pytest.raises(outbound.CannotSend, match="'hello' is not approved here"):
        outbound.send(conversation, [outbound.Template(foreign, ("Jane",))], author())
    with pytest.raises(outbound.CannotSend, match=r"takes 2 parameter\(s\), not 1"):
        outbound.send(conversation, [outbound.Template(ours, ("Jane",))], author())
    ours.active = False
    ours.save()
    with pytest.raises(outbound.CannotSend, match="not approved here"):
        outbound.send(conversation, [outbound.Template(ours, ("Jane", "x"))], author())
    assert meta.requests == []


def test_a_template_goes_when_the_window_is_closed(capture, route, meta) -> None:
    conversation = capture(text_body("Hi", wamid="wamid.T1", timestamp=int(time.time()) - 90000))
    template = MessageTemplate.objects.create(
        channel=conversation.channel, name="statement_ready", language="en_GB", body="Hi {{1}}"
    )
    (sent,) = outbound.send(conversation, [outbound.Template(template, ("Jane",))], author())
    (body,) = meta.sends()
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "statement_ready",
        "language": {"code": "en_GB"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Jane"}]}],
    }
    assert sent.state == "sent"
    assert sent.message.text == "statement_ready Jane"


def test_it_stops_at_the_first_part_meta_refuses(capture, route, meta) -> None:
    conversation = capture(text_body("Hi", wamid="wamid.S1"))
    meta.handler.plan.append((400, {"error": {"code": 131026, "message": "Undeliverable"}}))
    sent = outbound.send(
        conversation, [outbound.Text("one"), outbound.Text("two")], author("desk@bank.example")
    )
    assert [o.state for o in sent] == ["failed"]
    assert len(meta.sends()) == 1
    assert sent[0].error == "send: HTTP 400: 131026 Undeliverable"
    assert sent[0].sender == "desk@bank.example"
    assert Outbound.objects.count() == 1


def test_a_file_is_archived_as_the_messages_attachment(capture, route, meta) -> None:
    conversation = capture(text_body("Hi", wamid="wamid.F1"))
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8
    (sent,) = outbound.send(
        conversation,
        [outbound.File(pdf, "application/pdf", "statement.pdf", caption="Your statement")],
        author(),
    )
    (body,) = meta.sends()
    assert body["type"] == "document"
    assert body["document"] == {
        "id": "900001",
        "filename": "statement.pdf",
        "caption": "Your statement",
    }
    message = sent.message
    assert message.text == "Your statement"
    attachment = message.attachment
    assert attachment.media_id == "900001"
    assert attachment.outcome == "stored"
    assert attachment.file.size == len(pdf)
    assert attachment.file.mime_type == "application/pdf"
    assert sent.media == attachment.file
    for entry_id in (attachment.entry_id, attachment.file.entry_id):
        assert RetentionRecord.objects.filter(entry_id=entry_id).exists()


def test_an_audio_file_goes_without_caption_or_filename(capture, route, meta) -> None:
    conversation = capture(text_body("Hi", wamid="wamid.F2"))
    outbound.send(
        conversation,
        [outbound.File(b"OggS" + b"\0" * 100, "audio/ogg", "note.ogg", caption="ignored")],
        author(),
    )
    (body,) = meta.sends()
    assert body["type"] == "audio"
    assert body["audio"] == {"id": "900001"}


# --- sends a crash interrupted ---------------------------------------------------------------


def test_recover_interrupted_marks_stale_sends_unknown_and_never_resends(
    capture, route, meta, monkeypatch
) -> None:
    conversation = capture(text_body("Hi", wamid="wamid.R1"))

    def killed(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("the worker was killed mid-send")

    monkeypatch.setattr(graph, "send_message", killed)
    with pytest.raises(SystemExit):
        outbound.send(conversation, [outbound.Text("Hello")], author())
    monkeypatch.undo()
    stuck = Outbound.objects.get()
    assert stuck.state == "sending"
    assert fields(stuck.send_entry)["kind"] == "message.send"

    assert outbound.recover_interrupted() == 0  # not yet stale: it may still be in flight
    stuck.refresh_from_db()
    assert stuck.state == "sending"

    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=11)):
        assert outbound.recover_interrupted() == 1
        assert outbound.recover_interrupted() == 0
    stuck.refresh_from_db()
    assert stuck.state == "unknown"
    assert "interrupted" in stuck.error
    assert stuck.message is None
    failed = stuck.result_entry
    assert failed.kind == "message.send_failed"
    assert fields(failed)["outcome"] == "unknown"
    assert fields(failed)["send_seq"] == stuck.send_entry_id
    record = RetentionRecord.objects.get(entry_id=failed.seq)
    assert record.kind == "message.send_failed"
    assert record.conversation_id == conversation.pk
    assert meta.requests == []  # never sent, and never resent


def test_recover_interrupted_leaves_finished_sends_alone(capture, route, meta) -> None:
    conversation = capture(text_body("Hi", wamid="wamid.R2"))
    meta.handler.plan.append((400, {"error": {"code": 100, "message": "Invalid parameter"}}))
    outbound.send(conversation, [outbound.Text("one")], author())
    outbound.send(conversation, [outbound.Text("two")], author())
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1)):
        assert outbound.recover_interrupted() == 0
    assert sorted(Outbound.objects.values_list("state", flat=True)) == ["failed", "sent"]
    assert len(meta.sends()) == 2
