"""Messages imported from a phone export never pass for captured ones: the transcript and search
mark them "imported from a phone export" with the custodian, the file and its lines, the time as
exported with the declared zone, and each import warning; a captured message that an export
repeats says "also in the phone export of …".

The imports run through the real pipeline (imports/pipeline.py: upload, analyse, confirm, run,
inline) with the shared chat-export fixtures, as a user's would: an iOS group export with its
media (a zip), an Android one-to-one chat, a Spanish export with an impossible time, and an
export made to repeat one of the captured demo messages.
"""

from datetime import UTC

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from imports.models import ImportJob
from messaging.models import Conversation, Message
from review import transcript
from tests.imports.importing import import_chat
from tests.review.conftest import World, world

__all__ = ["world"]

GROUP_ZIP = "whatsapp-chat-parser-website__example.zip"
ONE_TO_ONE = "whatsapp-chat-history-viewer__in_the_morning_jane_doe.txt"
IMPOSSIBLE = "chat-miner__mmddyyyy_12hrs_spanish_ampm.txt"
REPEAT = "WhatsApp Chat with Amelia.txt"


def imported(world: World, name: str, **options: object) -> Conversation:
    """Import a fixture through the pipeline; the conversation it landed in."""
    job = import_chat(world.channel, name, **options)
    assert job.state == ImportJob.State.DONE, job.error
    assert job.conversation is not None
    return job.conversation


@pytest.fixture
def group(world: World) -> Conversation:
    """Loris's phone: the group with John and Emily (neither mapped), photos, a poll."""
    return imported(world, GROUP_ZIP, custodian="Loris", chat_name="WhatsApp Chat Parser Example")


@pytest.fixture
def jane(world: World) -> Conversation:
    """Wolfgang's phone: a one-to-one chat with Jane Doe, whom no number was mapped to."""
    return imported(world, ONE_TO_ONE, custodian="Wolfgang", chat_name="Jane Doe", one_to_one=True)


@pytest.fixture
def impossible(world: World) -> Conversation:
    """A Spanish export whose "00:08 a. m." the importer flags as an impossible time."""
    return imported(world, IMPOSSIBLE, custodian="John Doe", time_zone="Europe/Madrid")


def repeated(world: World, custodian: str = "Carol Adviser") -> Message:
    """A captured message of Amelia's that an export from `custodian`'s phone repeats (line 1)."""
    captured = Message.objects.filter(conversation=world.amelia, direction="in", type="text")
    message = captured.earliest("sent_at")
    assert message.sent_at is not None
    at = message.sent_at.astimezone(UTC)
    text = (
        f"{at:%d/%m/%Y, %H:%M} - Amelia: {message.text}\n{at:%d/%m/%Y, %H:%M} - {custodian}: ok\n"
    )
    imported(
        world,
        REPEAT,
        data=text.encode(),
        custodian=custodian,
        time_zone="UTC",
        date_order="dmy",
        mapping={"Amelia": {"as": "number", "number": f"+{world.amelia.participant.wa_id}"}},
        one_to_one=True,
    )
    return message


def by_text(conversation: Conversation) -> dict[str, transcript.Row]:
    return {row.message.text: row for row in transcript.window(conversation).rows}


def page(client: Client, user: User, conversation: Conversation) -> str:
    client.force_login(user)
    response = client.get(reverse("review:conversation", args=[conversation.pk]))
    assert response.status_code == 200
    return response.content.decode()


# --------------------------------------------------------------------------- the rows

GROUP_FILE = (
    "imported from a phone export · custodian Loris · whatsapp-chat-parser-website__example.zip"
)


def test_it_reads_what_the_export_said_into_the_row(group: Conversation) -> None:
    row = by_text(group)["Come on...\ndon't be so mysterious and show us!"]
    assert row.imported is not None
    assert row.imported.label == f"{GROUP_FILE} lines 24-25"
    assert row.imported.exported_time == "2019-06-20 16:03:07 (Europe/London)"
    assert row.imported.author == "Emily" and row.imported.warnings == []


def test_it_turns_flags_into_warnings(impossible: Conversation) -> None:
    row = by_text(impossible)['+12 345 578 created group "Groupname"']
    assert row.imported is not None and row.imported.kind == "system"
    assert row.imported.warnings == [
        "the exported time is impossible as written: read as best it could be"
    ]


def test_it_names_unmapped_authors_as_the_export_did(group: Conversation) -> None:
    rows = by_text(group)
    assert rows["Hey 👋"].sender_name == "John (as named in the export)"
    assert rows["Welcome to the chat example!"].sender_name == "Loris"  # the custodian's own


def test_it_leaves_captured_rows_unmarked(world: World) -> None:
    for row in transcript.window(world.amelia).rows:
        assert row.imported is None and row.also_in == []


def test_it_links_a_captured_message_to_the_export_that_repeats_it(world: World) -> None:
    message = repeated(world)
    (row,) = [r for r in transcript.window(world.amelia).rows if r.message == message]
    assert row.imported is None
    assert [e.also for e in row.also_in] == [
        "also in the phone export of Carol Adviser (WhatsApp Chat with Amelia.txt line 1)"
    ]


def test_it_uses_only_links_sealed_before_an_exports_checkpoint(world: World) -> None:
    message = repeated(world)
    upto = message.imported_as.get().entry_id
    (row,) = transcript.decorate(world.amelia, [message], upto=upto)
    assert row.also_in == []


# --------------------------------------------------------------------------- the transcript page


def test_it_marks_every_imported_message_in_the_transcript(
    client: Client, reviewer: User, jane: Conversation
) -> None:
    html = page(client, reviewer, jane)
    file = "whatsapp-chat-history-viewer__in_the_morning_jane_doe.txt"
    mark = f"<strong>imported from a phone export · custodian Wolfgang · {file} "
    assert html.count(mark) == 7
    assert f"{mark}lines 2-4</strong> · exported time 2021-01-03 09:15:00 (Europe/London)" in html
    assert "Jane Doe (as named in the export)" in html


def test_it_shows_import_warnings_in_the_transcript(
    client: Client, reviewer: User, impossible: Conversation
) -> None:
    html = page(client, reviewer, impossible)
    assert "⚠ Import warning: the exported time is impossible as written" in html


def test_it_titles_an_unmapped_chat_by_its_name(
    client: Client, reviewer: User, jane: Conversation
) -> None:
    html = page(client, reviewer, jane)
    assert "<h1>Jane Doe</h1>" in html and "A chat from a phone export" in html


def test_it_shows_each_kind_as_exported(
    client: Client, reviewer: User, group: Conversation, jane: Conversation
) -> None:
    html = page(client, reviewer, group)
    assert "Loris added Emily" in html  # a system line, as an event
    assert '<div class="muted small">Poll</div>' in html
    assert "POLL:<br>When can we meet?" in html
    assert '<div class="muted small">Media left out of the export</div>' in page(
        client, reviewer, jane
    )


def test_it_shows_the_media_of_an_imported_zip(
    client: Client, reviewer: User, group: Conversation
) -> None:
    html = page(client, reviewer, group)
    photo = Message.objects.get(conversation=group, type="image")
    assert f'<img class="media" src="{reverse("review:media", args=[photo.pk])}"' in html
    assert "⬇ 00000004-whatsapp-chat-parser-example.zip</a>" in html


def test_it_says_where_else_a_captured_message_is(
    client: Client, reviewer: User, world: World
) -> None:
    repeated(world)
    html = page(client, reviewer, world.amelia)
    assert (
        "Also in the phone export of Carol Adviser (WhatsApp Chat with Amelia.txt line 1)" in html
    )
    assert "imported from a phone export · custodian Carol Adviser · WhatsApp Chat" in html  # "ok"


def test_it_shows_the_import_in_the_evidence(
    client: Client, reviewer: User, group: Conversation
) -> None:
    html = page(client, reviewer, group)
    assert f"<dt>Source</dt><dd>{GROUP_FILE} line 5 (parser " in html


# --------------------------------------------------------------------------- search


def search(client: Client, user: User, q: str) -> str:
    client.force_login(user)
    response = client.get(reverse("review:search"), {"q": q})
    assert response.status_code == 200
    return response.content.decode()


def test_it_marks_imported_search_results(
    client: Client, reviewer: User, group: Conversation
) -> None:
    html = search(client, reviewer, "mysterious")
    assert f'<span class="badge imported">{GROUP_FILE} lines 24-25</span>' in html
    assert "from Emily (as named in the export) +WhatsApp Chat Parser Example" in html


def test_it_names_an_unmapped_chat_in_search_results(
    client: Client, reviewer: User, jane: Conversation
) -> None:
    html = search(client, reviewer, "ornare auctor")
    assert "from Jane Doe (as named in the export) chat “Jane Doe”" in html


def test_it_counts_warnings_in_search_results(
    client: Client, reviewer: User, impossible: Conversation
) -> None:
    assert "⚠ 1 import warning" in search(client, reviewer, "Groupname")


def test_it_counts_a_repeated_captured_message_once_and_says_where_else_it_is(
    client: Client, reviewer: User, world: World
) -> None:
    message = repeated(world)
    html = search(client, reviewer, f'"{message.text}"')
    assert html.count(f"?at={message.pk}#m{message.pk}") == 1
    assert "badge imported" not in html  # the export's line is that message, not another
    assert (
        "Also in the phone export of Carol Adviser (WhatsApp Chat with Amelia.txt line 1)" in html
    )
