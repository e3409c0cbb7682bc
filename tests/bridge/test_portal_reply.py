"""Replying from the transcript (bridge/views.py `reply`, the reply box in the transcript)."""

import json
import time
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from archive.models import LedgerEntry
from bridge.models import MessageTemplate, Outbound
from messaging.models import Channel, Conversation, Message
from tests.bridge.conftest import CLIENT, PNID, text_body

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


def can_reply(user: User) -> User:
    user.user_permissions.add(Permission.objects.get(codename="reply_to_client"))
    return User.objects.get(pk=user.pk)  # no cached permissions


def said(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def fields(entry: LedgerEntry) -> dict[str, Any]:
    return json.loads(bytes(entry.envelope))


@pytest.fixture
def conversation(capture: Any, route: Any, meta: Any) -> Conversation:
    return capture(text_body("Please call me", wamid="wamid.P1"))


@pytest.fixture
def quiet_conversation(capture: Any, route: Any, meta: Any) -> Conversation:
    return capture(text_body("Hi", wamid="wamid.P2", timestamp=int(time.time()) - 25 * 3600))


@pytest.fixture
def replier(reviewer: User) -> User:
    reviewer.email = "rey@bank.example"
    reviewer.save()
    return can_reply(reviewer)


def url(conversation: Conversation) -> str:
    return reverse("bridge:reply", args=[conversation.pk])


def test_a_reviewer_without_the_permission_gets_403(client, reviewer, conversation, meta) -> None:
    assert url(conversation) == f"/conversations/{conversation.pk}/reply/"
    client.force_login(reviewer)
    response = client.post(url(conversation), {"text": "Hello"})
    assert response.status_code == 403
    assert meta.requests == []
    assert not Outbound.objects.exists()


def test_anonymous_and_roleless_users_cannot_reply(client, outsider, conversation, meta) -> None:
    response = client.post(url(conversation), {"text": "Hello"})
    assert response.status_code == 302
    assert "login" in response["Location"]
    client.force_login(can_reply(outsider))  # the permission without a role
    assert client.post(url(conversation), {"text": "Hello"}).status_code == 403
    assert meta.requests == []


def test_a_get_is_not_allowed(client, replier, conversation, meta) -> None:
    client.force_login(replier)
    assert client.get(url(conversation)).status_code == 405
    assert meta.requests == []


def test_a_missing_conversation_is_404(client, replier, conversation) -> None:
    client.force_login(replier)
    response = client.post(reverse("bridge:reply", args=[conversation.pk + 1000]), {"text": "x"})
    assert response.status_code == 404


def test_text_is_sent_and_archived_under_the_users_name(
    client, replier, conversation, meta
) -> None:
    client.force_login(replier)
    response = client.post(url(conversation), {"text": "  I will call you at 3pm.  "})
    assert response.status_code == 302
    assert response["Location"] == reverse("review:conversation", args=[conversation.pk])
    assert said(response) == ["Sent on WhatsApp and archived."]
    assert meta.sends() == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CLIENT,
            "type": "text",
            "text": {"preview_url": False, "body": "I will call you at 3pm."},
        }
    ]
    sent = Outbound.objects.get()
    assert sent.user == replier
    assert sent.source == "portal"
    assert sent.sender == "rey@bank.example"
    assert sent.email is None
    assert sent.state == "sent"
    request_fields = fields(sent.send_entry)
    assert request_fields["source"] == "portal"
    assert request_fields["user"] == replier.pk
    assert request_fields["email_seq"] is None
    message = sent.message
    assert (message.direction, message.source, message.text) == (
        "out",
        "api",
        "I will call you at 3pm.",
    )
    assert message.conversation == conversation
    assert fields(message.entry)["send_seq"] == sent.send_entry_id


def test_a_file_is_uploaded_and_sent_as_media(client, replier, conversation, meta) -> None:
    client.force_login(replier)
    upload = SimpleUploadedFile("statement.pdf", PDF, content_type="application/pdf")
    response = client.post(url(conversation), {"text": "", "file": upload})
    assert said(response) == ["Sent on WhatsApp and archived."]
    assert [p.rsplit("/", 1)[1] for p, _, _ in meta.requests] == ["media", "messages"]
    assert PDF in meta.requests[0][2]
    (body,) = meta.sends()
    assert body["type"] == "document"
    assert body["document"] == {"id": "900001", "filename": "statement.pdf"}
    sent = Outbound.objects.get()
    assert sent.media.size == len(PDF)
    assert sent.message.attachment.file == sent.media


def test_text_and_a_photo_go_as_two_messages(client, replier, conversation, meta) -> None:
    client.force_login(replier)
    photo = SimpleUploadedFile("chart.jpg", b"\xff\xd8\xff" + bytes(500), "image/jpeg")
    client.post(url(conversation), {"text": "The chart", "file": photo})
    assert [p.rsplit("/", 1)[1] for p, _, _ in meta.requests] == ["media", "messages", "messages"]
    assert [s["type"] for s in meta.sends()] == ["text", "image"]
    assert meta.sends()[1]["image"] == {"id": "900001"}
    assert Outbound.objects.filter(user=replier, state="sent").count() == 2


def test_nothing_to_send_is_refused(client, replier, conversation, meta) -> None:
    client.force_login(replier)
    response = client.post(url(conversation), {"text": "   "})
    assert response.status_code == 302
    assert said(response) == [
        "Not sent: There was nothing to send: the reply had no text and no attachments."
    ]
    assert meta.requests == []


def test_a_closed_window_is_refused_and_nothing_is_sealed(
    client, replier, quiet_conversation, meta
) -> None:
    client.force_login(replier)
    before = LedgerEntry.objects.count()
    response = client.post(url(quiet_conversation), {"text": "Hello again"})
    assert response.status_code == 302
    (message,) = said(response)
    assert message.startswith("Not sent: WhatsApp's 24-hour customer-service window is closed")
    assert meta.requests == []
    assert not Outbound.objects.exists()
    assert LedgerEntry.objects.count() == before


def test_a_template_is_sent_when_the_window_is_closed(
    client, replier, quiet_conversation, meta, channel
) -> None:
    template = MessageTemplate.objects.create(
        channel=channel, name="call_back", language="en_US", body="Hi {{1}}, call {{2}}?"
    )
    client.force_login(replier)
    response = client.post(
        url(quiet_conversation),
        {"template": str(template.pk), "parameters": "Jane | tomorrow at 10", "text": "ignored"},
    )
    assert said(response) == ["Sent on WhatsApp and archived."]
    (body,) = meta.sends()
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "call_back",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Jane"},
                    {"type": "text", "text": "tomorrow at 10"},
                ],
            }
        ],
    }
    sent = Outbound.objects.get()
    assert (sent.type, sent.user, sent.source) == ("template", replier, "portal")


def test_a_template_of_another_number_or_inactive_is_refused(
    client, replier, quiet_conversation, meta, channel
) -> None:
    other = Channel.objects.create(name="Other desk", phone_number_id="555")
    foreign = MessageTemplate.objects.create(channel=other, name="hi", body="")
    inactive = MessageTemplate.objects.create(channel=channel, name="old", body="", active=False)
    client.force_login(replier)
    for template in (str(foreign.pk), str(inactive.pk), "abc"):
        response = client.post(url(quiet_conversation), {"template": template})
        assert said(response)[-1] == "That template is not approved for this number."
    assert meta.requests == []


def test_a_template_with_the_wrong_parameters_is_refused(
    client, replier, quiet_conversation, meta, channel
) -> None:
    template = MessageTemplate.objects.create(channel=channel, name="t", body="Hi {{1}}")
    client.force_login(replier)
    response = client.post(url(quiet_conversation), {"template": template.pk, "parameters": ""})
    assert said(response) == ["Not sent: The template 't' takes 1 parameter(s), not 0."]
    assert meta.requests == []


def test_metas_refusal_is_shown(client, replier, conversation, meta) -> None:
    meta.handler.plan.append((400, {"error": {"code": 131047, "message": "Re-engagement message"}}))
    client.force_login(replier)
    response = client.post(url(conversation), {"text": "Hello"})
    assert said(response) == ["Not (fully) sent: send: HTTP 400: 131047 Re-engagement message"]
    assert Outbound.objects.get().state == "failed"
    assert not Message.objects.filter(direction="out").exists()


def test_the_transcript_shows_the_reply_box_only_to_users_who_may_reply(
    client, reviewer, conversation
) -> None:
    page = reverse("review:conversation", args=[conversation.pk])
    client.force_login(reviewer)
    response = client.get(page)
    assert response.status_code == 200
    assert b"Reply on WhatsApp" not in response.content
    assert url(conversation).encode() not in response.content

    client.force_login(can_reply(reviewer))
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Reply on WhatsApp" in html
    assert f'action="{url(conversation)}"' in html
    assert 'name="text"' in html and 'name="file"' in html
    assert "The customer-service window is open until" in html


def test_the_reply_box_offers_only_templates_when_the_window_is_closed(
    client, replier, quiet_conversation, channel
) -> None:
    MessageTemplate.objects.create(channel=channel, name="call_back", body="Hi {{1}}")
    MessageTemplate.objects.create(channel=channel, name="retired", body="x", active=False)
    client.force_login(replier)
    html = client.get(reverse("review:conversation", args=[quiet_conversation.pk])).content
    html = html.decode()
    assert "24-hour customer-service window is closed" in html
    assert 'name="text"' not in html
    assert 'name="template"' in html
    assert "call_back (en)" in html
    assert "retired" not in html


def test_an_uploaded_file_on_our_channel_uses_our_token(
    client, replier, conversation, meta
) -> None:
    client.force_login(replier)
    client.post(url(conversation), {"file": SimpleUploadedFile("a.txt", b"notes", "text/plain")})
    path, headers, _ = meta.requests[0]
    assert path == f"/v25.0/{PNID}/media"
    assert headers["Authorization"] == "Bearer EAAG-bridge-token"
    assert meta.sends()[0]["document"]["filename"] == "a.txt"


def test_a_refused_upload_sends_nothing_and_says_so(client, replier, conversation, meta) -> None:
    meta.handler.plan.append((500, {"error": {"code": 131000, "message": "Something went wrong"}}))
    client.force_login(replier)
    upload = SimpleUploadedFile("statement.pdf", PDF, content_type="application/pdf")
    response = client.post(url(conversation), {"text": "Your statement", "file": upload})
    assert said(response) == [
        "Not sent: WhatsApp did not accept the attachment 'statement.pdf': media upload: "
        "HTTP 500: 131000 Something went wrong"
    ]
    assert meta.sends() == []
    assert not Outbound.objects.exists()


def test_a_long_text_is_never_cut_silently(client, replier, conversation, meta) -> None:
    typed = "\n".join(["A line of the reply, about forty chars."] * 100)
    assert len(typed) <= 4096  # what the textarea's maxlength allows
    submitted = typed.replace("\n", "\r\n")  # what the browser posts
    client.force_login(replier)
    response = client.post(url(conversation), {"text": submitted})
    sends = meta.sends()
    if sends:
        assert sends[0]["text"]["body"].replace("\r\n", "\n") == typed
    else:
        assert said(response)[0].startswith("Not sent")


def test_what_was_sent_shows_in_the_transcript_with_its_file(
    client, replier, conversation, meta, channel
) -> None:
    template = MessageTemplate.objects.create(channel=channel, name="call_back", body="Hi {{1}}")
    client.force_login(replier)
    client.post(url(conversation), {"template": template.pk, "parameters": "Jane"})
    upload = SimpleUploadedFile("statement.pdf", PDF, content_type="application/pdf")
    client.post(url(conversation), {"file": upload})
    response = client.get(reverse("review:conversation", args=[conversation.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "call_back Jane" in html
    document = Outbound.objects.get(type="document").message
    media = reverse("review:media", args=[document.pk])
    assert media in html
    served = client.get(media)
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == PDF
