"""Nothing is counted twice: the same file again imports nothing; two employees' exports of one
conversation are linked, each export's view kept; an entry also captured from the Cloud API is
linked to the captured message."""

import json

import pytest

from imports.models import ImportJob
from messaging.models import Channel, ChatExport, Delivery, ImportedMessage, Message
from messaging.sequencer import process_deliveries
from review import search

from .importing import FIXTURES, import_chat, make_channel

State = ImportJob.State
ANDROID = "port-whatsapp-datadonation__file3_android_ddmmyyyy_crlf.txt"
CLIENTS_A = {
    "person3": {"as": "number", "number": "+31 600 000 003"},
    "person4": {"as": "number", "number": "+31 600 000 004"},
}
CLIENTS_B = {
    "Person Three": {"as": "number", "number": "+31600000003"},
    "P4 \u2728": {"as": "number", "number": "+31600000004"},
}


@pytest.fixture
def channel(db: None) -> Channel:
    return make_channel()


def first_export() -> bytes:
    text = (FIXTURES / ANDROID).read_bytes().decode()
    return (
        text + "16/03/2022, 18:40 - person3: IMG-20220316-WA0001.jpg (file attached)\r\n"
    ).encode()


def second_employees_export() -> bytes:
    """The same chat from person2's phone: other names for the clients, the photo not exported,
    the first lines before person2 joined missing, one message more at the end."""
    text = (
        first_export()
        .decode()
        .replace("person3:", "Person Three:")
        .replace("person4:", "P4 \u2728:")
    )
    text = text.replace("IMG-20220316-WA0001.jpg (file attached)", "<Media omitted>")
    lines = text.split("\r\n")
    return "\r\n".join([*lines[2:], "27/03/2022, 09:00 - person2: one more", ""]).encode()


def test_it_imports_nothing_from_the_same_file_again(channel: Channel) -> None:
    first = import_chat(channel, ANDROID)
    messages = Message.objects.count()
    again = import_chat(channel, ANDROID, custodian="Someone else")
    assert again.state == State.DONE and again.identical_to == first
    assert "identical to export #" in again.preview["identical"]
    assert Message.objects.count() == messages
    assert ImportedMessage.objects.filter(export=again.export).count() == 0
    assert ChatExport.objects.count() == 2  # the second upload is kept, for the record


def test_it_links_two_employees_exports_of_one_conversation(channel: Channel) -> None:
    a = import_chat(
        channel,
        "a.txt",
        first_export(),
        custodian="person1",
        mapping=CLIENTS_A,
        chat_name="Utrecht",
    )
    created = Message.objects.count()
    b = import_chat(
        channel,
        "b.txt",
        second_employees_export(),
        custodian="person2",
        mapping=CLIENTS_B,
        chat_name="Utrecht",
    )
    assert b.state == State.DONE, b.error
    assert Message.objects.count() == created + 1  # only "one more" is new
    assert b.counts["created"] == 1 and b.counts["linked"] == b.preview["entries"] - 1
    seen_twice = ImportedMessage.objects.filter(export=b.export, created=False)
    assert {m.message.imported_as.get(created=True).export_id for m in seen_twice} == {a.export_id}
    views = ImportedMessage.objects.filter(message__text__startswith="Hoi")
    assert sorted(views.values_list("author", flat=True)) == ["Person Three", "person3"]


def test_it_links_an_overlapping_re_export_by_the_same_custodian(channel: Channel) -> None:
    import_chat(channel, "a.txt", first_export(), mapping=CLIENTS_A, chat_name="Utrecht")
    created = Message.objects.count()
    data = first_export() + b"27/03/2022, 09:00 - person2: later\r\n"
    job = import_chat(channel, "a2.txt", data, mapping=CLIENTS_A, chat_name="Utrecht")
    assert Message.objects.count() == created + 1 and job.counts["created"] == 1


def test_it_links_an_entry_to_the_message_captured_from_the_cloud_api(channel: Channel) -> None:
    body = (
        (FIXTURES.parent.parent / "messaging" / "fixtures")
        .joinpath("message-text-forwarded__netflie-php.json")
        .read_bytes()
    )
    Channel.objects.filter(pk=channel.pk).update(
        phone_number_id=json.loads(body)["entry"][0]["changes"][0]["value"]["metadata"][
            "phone_number_id"
        ]
    )
    Delivery.objects.create(body=body, headers={})
    assert process_deliveries() == 1
    captured = Message.objects.get()  # "MESSAGE_BODY" from 16315551234 at 2022-11-23 20:02:58Z
    export = "23/11/2022, 20:02 - Client: MESSAGE_BODY\n23/11/2022, 20:05 - Loris: noted\n"
    job = import_chat(
        Channel.objects.get(pk=channel.pk),
        "WhatsApp Chat with Client.txt",
        export.encode(),
        time_zone="UTC",
        mapping={"Client": {"as": "number", "number": "16315551234"}},
        one_to_one=True,
    )
    assert job.counts["captured"] == 1 and job.counts["created"] == 1
    linked = ImportedMessage.objects.get(created=False)
    assert linked.message == captured
    reply = Message.objects.get(source="phone_export")
    assert reply.conversation == captured.conversation and reply.direction == "out"
    assert Message.objects.filter(search=search.text_query("MESSAGE_BODY")).count() == 1
