"""Messages imported from a phone export in every export format: each marked "imported from a
phone export" with its custodian (PDF, EML, RSMF, CSV), an author no number was mapped to shown by
the name the export gave, a subject access export pseudonymising such authors too, and a bundle
that proves imported messages (and the export lines linked to captured ones) as any other
entry, accepted by its own verify.py."""

import csv
import io
import json
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest

from exports import csv as csv_export
from exports import eml, pdf, rsmf
from exports.scope import Scope
from exports.source import Source
from exports.target import DirectoryTarget
from messaging.models import Message
from tests.exports.conftest import World
from tests.exports.test_bundle import fake_writers, make_bundle, manifest_of, real, system_verify
from tests.exports.test_pdf import text_of
from tests.exports.test_rsmf import unpack
from tests.review.test_imported_marks import (
    Export,
    Line,
    alice,
    chat_conversation,
    import_export,
)

__all__ = ["alice", "fake_writers"]

MARK = "imported from a phone export · custodian Bob Trader · WhatsApp Chat with Alice.txt"


@pytest.fixture
def alice_source(alice: Export, make_source: Callable[..., Source]) -> Source:
    return make_source(Scope.for_conversation(alice.messages[0].conversation_id))


@pytest.fixture
def linked(world: World) -> Message:
    """A captured message of Amelia's that Bob's phone export repeats, on its line 14."""
    captured = Message.objects.filter(conversation=world.amelia, type="text").earliest("sent_at")
    import_export(world.amelia, [], links=[(captured, 14)])
    return captured


def files(writer: Any, source: Source, root: Path, pattern: str) -> dict[str, bytes]:
    writer.write(source, DirectoryTarget(root))
    return {p.name: p.read_bytes() for p in sorted(root.rglob(pattern))}


def mail(data: bytes) -> EmailMessage:
    return cast(EmailMessage, message_from_bytes(data, policy=policy.default))


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return cast(str, part.get_content()).replace("\r\n", "\n")


def csv_rows(source: Source, root: Path) -> list[dict[str, str]]:
    (data,) = files(csv_export, source, root, "*.csv").values()
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


# --------------------------------------------------------------------------- CSV


def test_it_gives_csv_rows_their_source_and_custodian(alice_source: Source, tmp_path: Path) -> None:
    rows = {r["text"]: r for r in csv_rows(alice_source, tmp_path)}
    row = rows["Line one\nline two"]
    assert row["source"] == "phone export" and row["custodian"] == "Bob Trader"
    assert (row["export_file"], row["export_lines"]) == ("WhatsApp Chat with Alice.txt", "7-8")
    assert rows["Can you buy 500 ACME before the results?"]["sender"] == (
        "Alice (as named in the export)"
    )


def test_it_marks_captured_csv_rows_and_their_links(
    linked: Message, world: World, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    rows = csv_rows(make_source(Scope.for_conversation(world.amelia.pk)), tmp_path)
    assert {r["source"] for r in rows} == {"captured"}
    (row,) = [r for r in rows if r["wamid"] == linked.wamid]
    assert row["also_in_phone_exports"] == (
        "custodian Bob Trader: WhatsApp Chat with Alice.txt line 14"
    )
    assert all(r["custodian"] == "" for r in rows)


# --------------------------------------------------------------------------- EML


def test_it_heads_imported_emails_with_their_source(alice_source: Source, tmp_path: Path) -> None:
    found = [mail(d) for d in files(eml, alice_source, tmp_path, "*.eml").values()]
    assert len(found) == 8
    by_text = {body(m).split("\n")[2]: m for m in found}
    message = by_text["Can you buy 500 ACME before the results?"]
    assert message["X-ClientWindow-Source"] == (
        'phone-export; custodian="Bob Trader"; file="WhatsApp Chat with Alice.txt"; lines=4'
    )
    assert body(message).startswith(f"[I{MARK[1:]} line 4: not captured from WhatsApp;")
    assert "Exported time 2026-09-21 10:04:00 (Europe/London)" in body(message)
    assert str(message["From"]) == '"Alice (as named in the export)" <unknown@whatsapp.invalid>'


def test_it_writes_import_warnings_into_the_email(alice_source: Source, tmp_path: Path) -> None:
    found = [mail(d) for d in files(eml, alice_source, tmp_path, "*.eml").values()]
    (flagged,) = [m for m in found if "Line one" in body(m)]
    assert "Import warning: the exported time 2026-09-21 10:07:00 occurs twice" in body(flagged)


def test_it_leaves_captured_emails_without_a_source_header(
    linked: Message, world: World, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    source = make_source(Scope.for_conversation(world.amelia.pk))
    found = [mail(d) for d in files(eml, source, tmp_path, "*.eml").values()]
    assert all(m["X-ClientWindow-Source"] is None for m in found)
    (repeated,) = [m for m in found if m["X-ClientWindow-Wamid"] == linked.wamid]
    assert repeated["X-ClientWindow-Also-In"] == (
        'phone-export; custodian="Bob Trader"; file="WhatsApp Chat with Alice.txt"; lines=14'
    )
    assert "Also in the phone export of Bob Trader (WhatsApp Chat with Alice.txt line 14)." in (
        body(repeated)
    )


# --------------------------------------------------------------------------- RSMF


def manifest(source: Source, root: Path) -> dict[str, Any]:
    (data,) = files(rsmf, source, root, "*.rsmf").values()  # one day, one file
    return unpack(data)[2]


def test_it_gives_rsmf_events_their_source_and_custodian(
    alice_source: Source, tmp_path: Path
) -> None:
    found = manifest(alice_source, tmp_path)
    for event in found["events"]:
        custom = {c["name"]: c["value"] for c in event["custom"]}
        assert custom["Source"] == "phone export" and custom["Custodian"] == "Bob Trader"
        assert custom["Export file"] == "WhatsApp Chat with Alice.txt"
    (flagged,) = [e for e in found["events"] if e["body"] == "Line one\nline two"]
    assert {"name": "Export lines", "value": "7-8"} in flagged["custom"]
    assert any(c["name"] == "Import warning" for c in flagged["custom"])


def test_it_makes_an_unmapped_author_an_rsmf_participant_by_name(
    alice_source: Source, tmp_path: Path
) -> None:
    found = manifest(alice_source, tmp_path)
    people = {p["id"]: p for p in found["participants"]}
    (event,) = [e for e in found["events"] if e["body"].startswith("Can you buy")]
    author = people[event["participant"]]
    assert author["display"] == "Alice (as named in the export)" and "account_id" not in author
    assert {"name": "Name as exported", "value": "Alice"} in author["custom"]
    (own,) = [e for e in found["events"] if e["body"] == "Done, at 12.40"]
    assert own["participant"].startswith("firm-") and own["direction"] == "outgoing"


def test_it_says_so_in_the_rsmf_transcript(alice_source: Source, tmp_path: Path) -> None:
    (data,) = files(rsmf, alice_source, tmp_path, "*.rsmf").values()
    (text,) = [p for p in mail(data).walk() if p.get_content_type() == "text/plain"]
    assert f"[{MARK} line 4]" in text.get_content()


# --------------------------------------------------------------------------- PDF


def test_it_marks_imported_messages_in_the_pdf(
    alice_source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pdf, "RENDER_CHUNK", 5)
    (tmp_path / "out").mkdir()
    pdf.write(alice_source, DirectoryTarget(tmp_path / "out"))
    text = " ".join(text_of((tmp_path / "out" / "transcript.pdf").read_bytes()).split())
    assert f"I{MARK[1:]} line 4 · exported time 2026-09-21 10:04:00 (Europe/London)" in text
    assert "Import warning: the exported time 2026-09-21 10:07:00 occurs twice" in text
    assert "of which 8 imported from phone exports" in text
    assert "Alice (as named in the export)" in text


def test_it_lists_imported_messages_in_the_pdf_manifest(
    alice: Export, alice_source: Source, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    list(pdf.pieces(alice_source, list(alice_source.parts()), work))
    listed = json.loads((work / "manifest.json").read_text())["messages"]
    assert {m["seq"] for m in listed} == {m.entry_id for m in alice.messages}
    assert listed[1]["imported"] == {
        "custodian": "Bob Trader",
        "file": "WhatsApp Chat with Alice.txt",
        "lines": [4, 4],
    }


# --------------------------------------------------------------------------- subject access


def test_it_pseudonymises_authors_named_only_in_an_export(
    world: World, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    amelia = world.amelia.participant
    assert amelia is not None
    group = chat_conversation(world, "Family", group=True)
    import_export(group, [Line(2, "hi all", sender=amelia), Line(3, "hello", author="Dave")])
    scope = Scope.for_participant(amelia.wa_id, redact_others=True)
    rows = [r for r in csv_rows(make_source(scope), tmp_path) if r["source"] == "phone export"]
    assert {r["text"]: r["sender"] for r in rows}["hello"] == "Participant 2"
    assert not any("Dave" in cell for row in rows for cell in row.values())


# --------------------------------------------------------------------------- the bundle


@pytest.mark.usefixtures("fake_writers")
def test_it_proves_imported_messages_and_linked_lines_in_the_bundle(
    alice: Export, linked: Message, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    from archive import checkpoints

    scope = Scope.for_search({"q": "", "channel": str(linked.channel_id)})
    path = make_bundle(make_source(scope), tmp_path / "bundle.zip")
    entries = manifest_of(path)["entries"]
    imported = [e for e in entries if e["kind"] == "message.imported"]
    assert {e["seq"] for e in imported if e["role"] == "message"} == {
        m.entry_id for m in alice.messages
    }
    (line,) = [e for e in imported if e["role"] == "import"]
    assert line["message_seq"] == linked.entry_id
    code, out = system_verify(path, "--key", checkpoints.verifier_key_text())
    assert code == 0, out
    assert "VERIFIED" in out


@real
def test_it_verifies_a_real_bundle_of_an_imported_chat(
    alice_source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archive import checkpoints

    monkeypatch.setattr(pdf, "RENDER_CHUNK", 5)
    path = make_bundle(alice_source, tmp_path / "bundle.zip")
    code, out = system_verify(path, "--key", checkpoints.verifier_key_text())
    assert code == 0, out
