"""The reply form (bridge/forms.py): what was posted from the transcript's reply box, turned
into the parts `outbound.send` takes or into the notice shown."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from bridge import outbound
from bridge.forms import MAX_TEXT, ReplyForm
from bridge.models import MessageTemplate, Outbound
from messaging.models import Channel, Conversation
from tests.bridge.conftest import text_body


@pytest.fixture
def chat(capture: Any, route: Any) -> Conversation:
    return capture(text_body("Hello", wamid="wamid.F1"))


def reply(channel: Channel, user: User, data: dict[str, Any], **files: Any) -> ReplyForm:
    form = ReplyForm(
        data,
        files,
        templates=MessageTemplate.objects.filter(channel=channel, active=True),
        sent=Outbound.objects.filter(user=user),
    )
    form.is_valid()
    return form


def test_it_makes_text_and_a_file_two_parts(channel, reviewer) -> None:
    upload = SimpleUploadedFile("notes.txt", b"notes", "text/plain")
    form = reply(channel, reviewer, {"text": " Hi\r\nthere "}, file=upload)
    assert form.parts() == [
        outbound.Text("Hi\nthere"),
        outbound.File(b"notes", "text/plain", "notes.txt"),
    ]


def test_it_sends_a_template_alone_with_its_parameters(channel, reviewer) -> None:
    template = MessageTemplate.objects.create(channel=channel, name="call_back", body="")
    data = {"template": str(template.pk), "parameters": "Jane | 10am", "text": "x" * 5000}
    form = reply(channel, reviewer, data)
    assert form.parts() == [outbound.Template(template, ("Jane", "10am"))]


@pytest.mark.parametrize("chosen", ["abc", "²", "999999"])
def test_it_refuses_a_template_not_approved_for_the_number(channel, reviewer, chosen) -> None:
    form = reply(channel, reviewer, {"template": chosen})
    assert form.problem() == "That template is not approved for this number."
    assert not form.already_sent()


def test_it_refuses_text_longer_than_whatsapp_takes(channel, reviewer) -> None:
    form = reply(channel, reviewer, {"text": "x" * (MAX_TEXT + 1)})
    assert form.problem() == "Not sent: WhatsApp takes at most 4,096 characters of text."


def test_it_refuses_a_submission_already_sent_before_anything_else(
    chat, channel, reviewer, meta
) -> None:
    author = outbound.Author(Outbound.Source.PORTAL, reviewer, submission="k" * 64)
    outbound.send(chat, [outbound.Text("Hi")], author)
    form = reply(channel, reviewer, {"submission": "k" * 80, "template": "abc"})
    assert form.already_sent()
    assert form.problem() == "That reply was already sent; it was not sent again."
