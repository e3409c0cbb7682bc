"""Messages imported from a phone export never pass for captured ones: the transcript and search
mark them "imported from a phone export" with the custodian, the file and its lines, the time as
exported with the declared zone, and each import warning; a captured message that an export
repeats says "also in the phone export of …".

The imported messages are built here as imports/pipeline.py records them (docs: the issue 18
design): one `message.imported` fact per entry, a Message with source "phone_export" sharing its
seq, and ImportedMessage rows (created, or linking a line to a message already archived).
"""

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from archive import ledger
from archive.envelope import Fact
from messaging import media
from messaging.models import ChatExport, Conversation, ImportedMessage, Message, Participant
from review import transcript
from review.provenance import IMPORTED
from tests.review.conftest import NOW, World, world

__all__ = ["world"]

FILE = "WhatsApp Chat with Alice.txt"
AT = datetime.fromtimestamp(NOW + 500, tz=UTC)


@dataclass
class Line:
    """One entry of a made-up export, as the parser would yield it."""

    first: int
    text: str
    author: str | None = "Alice"
    kind: str = "text"
    type: str = ""  # the Message type, when it is not the kind
    last: int = 0
    flags: list[str] = field(default_factory=list)
    out: bool = False
    sender: Participant | None = None
    attachment: str | None = None
    edited: bool = False
    seconds: int = 0  # after AT


@dataclass
class Export:
    record: ChatExport
    messages: list[Message]


def chat_conversation(world: World, name: str = "Alice", *, group: bool = False) -> Conversation:
    """An unmapped one-to-one chat's conversation (or a group's), keyed as imports/ keys it."""
    (entry,) = ledger.append([Fact("conversation", {"phone_number_id": "x"}, {"key": b"k"})])
    return Conversation.objects.create(
        channel=world.channel, key=f"export:{name}", group_id=name if group else "", entry=entry
    )


def import_export(
    conversation: Conversation,
    lines: list[Line],
    *,
    custodian: str = "Bob Trader",
    file_name: str = FILE,
    time_zone: str = "Europe/London",
    links: list[tuple[Message, int]] = (),  # type: ignore[assignment]
) -> Export:
    """Seal an upload and its entries the way the pipeline does (see the module docstring)."""
    content = "\n".join(line.text for line in lines).encode() + file_name.encode()
    stored = media.store_file(content, "text/plain")
    channel = conversation.channel
    (sealed,) = ledger.append(
        [
            Fact(
                "chat.export",
                {
                    "phone_number_id": channel.phone_number_id,
                    "file_name": file_name,
                    "sha256": stored.sha256,
                    "size": stored.size,
                    "custodian": custodian,
                    "uploaded_by": "legal",
                    "time_zone": time_zone,
                },
            )
        ]
    )
    export = ChatExport.objects.create(
        channel=channel,
        file=stored,
        file_name=file_name,
        sha256=stored.sha256,
        size=stored.size,
        custodian=custodian,
        uploaded_at=AT,
        time_zone=time_zone,
        entry=sealed,
    )
    messages = [_entry(export, conversation, line) for line in lines]
    for captured, line in links:
        _link(export, captured, line)
    return Export(export, messages)


def _fact(export: ChatExport, line: Line, local: str, same_as: int | None) -> Fact:
    return Fact(
        "message.imported",
        {
            "export": export.pk,
            "phone_number_id": export.channel.phone_number_id,
            "first_line": line.first,
            "last_line": line.last or line.first,
            "local_time": local,
            "time_zone": export.time_zone,
            "custodian": export.custodian,
            "parser_version": "1.0",
            "entry_kind": line.kind,  # "kind" is the envelope's own
            "flags": ",".join(line.flags),
            "direction": "out" if line.out else "in",
            "same_as": same_as,
        },
        {"author": (line.author or "").encode(), "text": line.text.encode()},
    )


def _entry(export: ChatExport, conversation: Conversation, line: Line) -> Message:
    local = f"2026-09-21T10:{line.first % 60:02d}:00"
    (entry,) = ledger.append([_fact(export, line, local, None)])
    facts: dict[str, Any] = {
        "export": export.pk,
        "custodian": export.custodian,
        "author": line.author,
        "lines": [line.first, line.last or line.first],
        "local_time": local,
        "time_zone": export.time_zone,
        "kind": line.kind,
        "flags": line.flags,
        "attachment": line.attachment,
        "edited": line.edited,
        "parser_version": "1.0",
        "file_name": export.file_name,
    }
    message = Message.objects.create(
        channel=export.channel,
        wamid=f"export:{export.sha256[:32]}:{line.first}",
        conversation=conversation,
        direction="out" if line.out else "in",
        source=IMPORTED,
        type=line.type or line.kind,
        sender=line.sender,
        sent_at=datetime.fromtimestamp(NOW + 500 + line.seconds, tz=UTC),
        text=line.text,
        payload={"import": facts},
        delivery=None,
        entry=entry,
    )
    _record(export, message, line, local, entry, created=True)
    return message


def _link(export: ChatExport, captured: Message, first: int) -> None:
    line = Line(first, captured.text, out=captured.direction == "out")
    local = f"2026-09-21T10:{first % 60:02d}:00"
    (entry,) = ledger.append([_fact(export, line, local, captured.entry_id)])
    _record(export, captured, line, local, entry, created=False)


def _record(
    export: ChatExport, message: Message, line: Line, local: str, entry: Any, *, created: bool
) -> None:
    ImportedMessage.objects.create(
        export=export,
        message=message,
        created=created,
        first_line=line.first,
        last_line=line.last or line.first,
        author=line.author or "",
        local_time=local,
        kind=line.kind,
        flags=line.flags,
        match_key=hashlib.sha256(f"{export.pk}:{line.first}".encode()).hexdigest(),
        entry=entry,
    )


def attach(message: Message, name: str, content: bytes, mime: str) -> None:
    """A zip member stored and attached as the pipeline does (media_id "export:<member>")."""
    digest = hashlib.sha256(content).hexdigest()
    media._store(message, f"export:{name}", media.graph.Download(content, digest, mime), mime)


@pytest.fixture
def alice(world: World) -> Export:
    """An unmapped one-to-one chat: Alice's lines, the custodian's, a system line, kinds."""
    conversation = chat_conversation(world)
    return import_export(
        conversation,
        [
            Line(3, "Messages and calls are end-to-end encrypted.", author=None, kind="system"),
            Line(4, "Can you buy 500 ACME before the results?", seconds=1),
            Line(5, "Done, at 12.40", author="Bob Trader", out=True, seconds=2),
            Line(7, "Line one\nline two", last=8, flags=["dst-ambiguous"], seconds=3),
            Line(9, "This message was deleted", kind="deleted", seconds=4),
            Line(10, "POLL:\nLunch?\nOPTION: yes (1 vote)", kind="poll", seconds=5),
            Line(11, "‎<Media omitted>", kind="media_omitted", seconds=6),
            Line(
                12,
                "‎IMG-0001.jpg (file attached)",
                kind="attachment",
                type="image",
                attachment="IMG-0001.jpg",
                seconds=7,
            ),
        ],
    )


def rows(conversation: Conversation) -> dict[int, transcript.Row]:
    return {row.message.pk: row for row in transcript.window(conversation).rows}


def page(client: Client, user: User, conversation: Conversation) -> str:
    client.force_login(user)
    response = client.get(reverse("review:conversation", args=[conversation.pk]))
    assert response.status_code == 200
    return response.content.decode()


# --------------------------------------------------------------------------- the rows


def test_it_reads_what_the_export_said_into_the_row(alice: Export) -> None:
    row = rows(alice.messages[0].conversation)[alice.messages[3].pk]
    assert row.imported is not None
    assert row.imported.label == (
        "imported from a phone export · custodian Bob Trader · "
        "WhatsApp Chat with Alice.txt lines 7-8"
    )
    assert row.imported.exported_time == "2026-09-21 10:07:00 (Europe/London)"
    assert row.imported.warnings == [
        "the exported time 2026-09-21 10:07:00 occurs twice in Europe/London (the clocks went"
        " back): read as the first of the two"
    ]


def test_it_names_an_unmapped_author_as_the_export_did(alice: Export) -> None:
    by_id = rows(alice.messages[0].conversation)
    assert by_id[alice.messages[1].pk].sender_name == "Alice (as named in the export)"
    assert by_id[alice.messages[2].pk].sender_name == "Bob Trader"  # the custodian's own


def test_it_leaves_captured_rows_unmarked(world: World) -> None:
    for row in transcript.window(world.amelia).rows:
        assert row.imported is None and row.also_in == []


def test_it_links_a_captured_message_to_the_export_that_repeats_it(world: World) -> None:
    captured = transcript.window(world.amelia).rows[0].message
    import_export(world.amelia, [Line(20, "hello again")], links=[(captured, 14)])
    row = rows(world.amelia)[captured.pk]
    assert [e.also for e in row.also_in] == [
        "also in the phone export of Bob Trader (WhatsApp Chat with Alice.txt line 14)"
    ]


def test_it_uses_only_links_sealed_before_an_exports_checkpoint(world: World) -> None:
    captured = transcript.window(world.amelia).rows[0].message
    import_export(world.amelia, [], links=[(captured, 14)])
    upto = ImportedMessage.objects.get(created=False).entry_id
    (row,) = transcript.decorate(world.amelia, [captured], upto=upto)
    assert row.also_in == []


# --------------------------------------------------------------------------- the transcript page


def test_it_marks_imported_messages_in_the_transcript(
    client: Client, reviewer: User, alice: Export
) -> None:
    html = page(client, reviewer, alice.messages[0].conversation)
    assert html.count("<strong>imported from a phone export · custodian Bob Trader · ") == 8
    assert "WhatsApp Chat with Alice.txt line 4</strong>" in html
    assert "exported time 2026-09-21 10:04:00 (Europe/London)" in html
    assert "Alice (as named in the export)" in html
    assert "⚠ Import warning: the exported time 2026-09-21 10:07:00 occurs twice" in html


def test_it_titles_an_unmapped_chat_by_its_name(
    client: Client, reviewer: User, alice: Export
) -> None:
    html = page(client, reviewer, alice.messages[0].conversation)
    assert "<h1>Alice</h1>" in html and "A chat from a phone export" in html
    assert "None" not in html.split("<h1>", 1)[1].split("</h1>", 1)[0]


def test_it_shows_each_kind_as_exported(client: Client, reviewer: User, alice: Export) -> None:
    html = page(client, reviewer, alice.messages[0].conversation)
    assert "Messages and calls are end-to-end encrypted." in html  # the system line, as an event
    for label in (
        "Deleted message (the export keeps only the notice)",
        "Poll",
        "Media left out of the export",
    ):
        assert f'<div class="muted small">{label}</div>' in html
    assert "POLL:<br>Lunch?<br>OPTION: yes (1 vote)" in html
    assert "📍" not in html  # never drawn as a Cloud API location


def test_it_shows_an_imported_attachment(
    client: Client, reviewer: User, alice: Export, world: World
) -> None:
    from tests.review.conftest import PNG

    attach(alice.messages[7], "IMG-0001.jpg", PNG, "image/png")
    html = page(client, reviewer, alice.messages[0].conversation)
    assert reverse("review:media", args=[alice.messages[7].pk]) in html


def test_it_says_where_else_a_captured_message_is(
    client: Client, reviewer: User, world: World
) -> None:
    captured = transcript.window(world.amelia).rows[-1].message
    import_export(world.amelia, [], custodian="Carol Adviser", links=[(captured, 31)])
    html = page(client, reviewer, world.amelia)
    assert (
        "Also in the phone export of Carol Adviser (WhatsApp Chat with Alice.txt line 31)" in html
    )
    assert "imported from a phone export · custodian" not in html


def test_it_shows_the_import_in_the_evidence(client: Client, reviewer: User, alice: Export) -> None:
    html = page(client, reviewer, alice.messages[0].conversation)
    assert "<dt>Source</dt><dd>imported from a phone export · custodian Bob Trader" in html
    assert "(parser 1.0)" in html


# --------------------------------------------------------------------------- search


def search(client: Client, user: User, q: str) -> str:
    client.force_login(user)
    response = client.get(reverse("review:search"), {"q": q})
    assert response.status_code == 200
    return response.content.decode()


def test_it_marks_imported_search_results(client: Client, reviewer: User, alice: Export) -> None:
    html = search(client, reviewer, "ACME")
    assert (
        '<span class="badge imported">imported from a phone export · custodian Bob Trader · '
        "WhatsApp Chat with Alice.txt line 4</span>"
    ) in html
    assert "from Alice (as named in the export) chat “Alice”" in html


def test_it_counts_warnings_in_search_results(
    client: Client, reviewer: User, alice: Export
) -> None:
    assert "⚠ 1 import warning" in search(client, reviewer, '"line two"')


def test_it_says_a_captured_result_is_also_in_an_export(
    client: Client, reviewer: User, world: World
) -> None:
    captured = transcript.window(world.amelia).rows[-1].message
    import_export(world.amelia, [], links=[(captured, 40)])
    word = captured.text.split()[0]
    html = search(client, reviewer, word)
    assert "Also in the phone export of Bob Trader (WhatsApp Chat with Alice.txt line 40)" in html
