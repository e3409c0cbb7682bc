"""A group's name comes from its own system lines when the file name does not give it."""

import pytest

from imports.chat_names import subject

from .importing import make_channel, upload


@pytest.mark.parametrize(
    ("line", "name"),
    [
        (
            "Loris created group \u201cWhatsApp Chat Parser Example\u201d",
            "WhatsApp Chat Parser Example",
        ),
        ('+12 345 578 created group "Groupname"', "Groupname"),
        ("\u200eYou created group \u201cDesk\u201d", "Desk"),
        ('Bob changed the subject from "Old desk" to "New desk"', "New desk"),
        ("Alice changed the group name to \u201cRates\u201d", "Rates"),
        ("Du hast die Gruppe \u201eTeam\u201c erstellt.", "Team"),
        ('Anna a créé le groupe "Équipe"', "Équipe"),
        ("Bob added Alice", None),
        ("Messages and calls are end-to-end encrypted.", None),
    ],
)
def test_the_subject_of_a_system_line(line: str, name: str | None) -> None:
    assert subject(line) == name


@pytest.mark.django_db
def test_a_re_zipped_ios_export_is_named_after_its_group() -> None:
    job = upload(make_channel(), "whatsapp-chat-parser-website__example.zip")
    assert job.preview["chat_name"] == "WhatsApp Chat Parser Example"
    assert job.preview["one_to_one"] is False


@pytest.mark.django_db
def test_an_android_file_name_names_the_chat_before_its_lines() -> None:
    data = b'20/06/20, 00:08 - +12 345 578 created group "Groupname"\n20/06/20, 00:09 - A: hi\n'
    job = upload(make_channel(), "WhatsApp Chat with Rates desk.txt", data)
    assert job.preview["chat_name"] == "Rates desk"
    assert job.preview["one_to_one"] is False
