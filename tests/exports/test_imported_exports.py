"""Messages imported from a phone export in every export format: each marked "imported from a
phone export" with its custodian (PDF, EML, RSMF, CSV), an author no number was mapped to shown by
the name the export gave, a subject access export pseudonymising such authors too, and a bundle
that proves imported messages (and the export lines linked to captured ones) as any other
entry, accepted by its own verify.py. The imports run through the real pipeline with the shared
fixtures (tests/review/test_imported_marks.py)."""

import csv
import io
import json
import zipfile
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from pypdf import PdfReader

from archive import checkpoints
from exports import csv as csv_export
from exports import eml, pdf, rsmf
from exports.scope import Scope
from exports.source import Source
from exports.target import DirectoryTarget
from messaging.models import Conversation, Message
from messaging.participants import latest_names
from tests.exports.conftest import World
from tests.exports.test_bundle import fake_writers, make_bundle, manifest_of, real, system_verify
from tests.review.test_imported_marks import (
    GROUP_ZIP,
    ONE_TO_ONE,
    group,
    imported,
    impossible,
    jane,
    repeated,
)

__all__ = ["fake_writers", "group", "impossible", "jane"]

JANE = f"imported from a phone export · custodian Wolfgang · {ONE_TO_ONE}"
LORIS = f"imported from a phone export · custodian Loris · {GROUP_ZIP}"
IMPOSSIBLE_TIME = "the exported time is impossible as written: read as best it could be"


def source_of(make_source: Callable[..., Source], conversation: Conversation) -> Source:
    return make_source(Scope.for_conversation(conversation.pk))


def files(writer: Any, source: Source, root: Path, pattern: str) -> dict[str, bytes]:
    writer.write(source, DirectoryTarget(root))
    return {p.name: p.read_bytes() for p in sorted(root.rglob(pattern))}


def mail(data: bytes) -> EmailMessage:
    return cast(EmailMessage, message_from_bytes(data, policy=policy.default))


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return cast(str, part.get_content()).replace("\r\n", "\n")


def emails(source: Source, root: Path) -> list[EmailMessage]:
    return [mail(data) for data in files(eml, source, root, "*.eml").values()]


def header(message: EmailMessage, name: str) -> str:
    return " ".join(str(message[name]).split())  # unfolded


def csv_rows(source: Source, root: Path) -> list[dict[str, str]]:
    (data,) = files(csv_export, source, root, "*.csv").values()
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


# --------------------------------------------------------------------------- CSV


def test_it_gives_csv_rows_their_source_and_custodian(
    group: Conversation, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    rows = {r["text"]: r for r in csv_rows(source_of(make_source, group), tmp_path)}
    row = rows["Come on...\ndon't be so mysterious and show us!"]
    assert (row["source"], row["custodian"]) == ("phone export", "Loris")
    assert (row["export_file"], row["export_lines"]) == (GROUP_ZIP, "24-25")
    assert rows["Hey 👋"]["sender"] == "John (as named in the export)"
    assert {r["source"] for r in rows.values()} == {"phone export"}


def test_it_marks_captured_csv_rows_and_their_links(
    world: World, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    message = repeated(world)
    rows = {r["wamid"]: r for r in csv_rows(source_of(make_source, world.amelia), tmp_path)}
    assert rows[message.wamid]["source"] == "captured"
    assert rows[message.wamid]["also_in_phone_exports"] == (
        "custodian Carol Adviser: WhatsApp Chat with Amelia.txt line 1"
    )
    (reply,) = [r for r in rows.values() if r["source"] == "phone export"]  # Carol's "ok"
    assert (reply["text"], reply["custodian"], reply["export_lines"]) == (
        "ok",
        "Carol Adviser",
        "2",
    )


# --------------------------------------------------------------------------- EML


def test_it_heads_imported_emails_with_their_source(
    jane: Conversation, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    found = {body(m).split("\n")[2]: m for m in emails(source_of(make_source, jane), tmp_path)}
    message = found["Integer ornare auctor dui quis tincidunt."]
    assert header(message, "X-ClientWindow-Source") == (
        f'phone-export; custodian="Wolfgang"; file="{ONE_TO_ONE}"; lines=6'
    )
    assert body(message).startswith(f"[I{JANE[1:]} line 6: not captured from WhatsApp;")
    assert "Exported time 2021-01-05 15:07:00 (Europe/London)" in body(message)
    assert "Author as exported: Jane Doe." in body(message)
    assert str(message["From"]) == '"Jane Doe (as named in the export)" <unknown@whatsapp.invalid>'


def test_it_writes_import_warnings_into_the_email(
    impossible: Conversation, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    found = emails(source_of(make_source, impossible), tmp_path)
    (flagged,) = [m for m in found if "Groupname" in body(m)]
    assert f"Import warning: {IMPOSSIBLE_TIME}." in body(flagged)


def test_it_leaves_captured_emails_without_a_source_header(
    world: World, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    message = repeated(world)
    found = {
        str(m["X-ClientWindow-Wamid"]): m
        for m in emails(source_of(make_source, world.amelia), tmp_path)
    }
    sourced = [w for w, m in found.items() if m["X-ClientWindow-Source"] is not None]
    assert len(sourced) == 1 and sourced[0].startswith("export:")  # Carol's "ok" only
    assert header(found[message.wamid], "X-ClientWindow-Also-In") == (
        'phone-export; custodian="Carol Adviser"; file="WhatsApp Chat with Amelia.txt"; lines=1'
    )
    assert "Also in the phone export of Carol Adviser (WhatsApp Chat with Amelia.txt line 1)." in (
        body(found[message.wamid])
    )


# --------------------------------------------------------------------------- RSMF


def unpack(data: bytes) -> tuple[EmailMessage, dict[str, Any]]:
    container = mail(data)
    (attachment,) = container.iter_attachments()
    with zipfile.ZipFile(io.BytesIO(attachment.get_content())) as archive:
        return container, json.loads(archive.read("rsmf_manifest.json"))


def rsmf_file(source: Source, root: Path) -> tuple[EmailMessage, dict[str, Any]]:
    (data,) = files(rsmf, source, root, "*.rsmf").values()  # one day, one file
    return unpack(data)


def test_it_gives_rsmf_events_their_source_and_custodian(
    group: Conversation, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    _, manifest = rsmf_file(source_of(make_source, group), tmp_path)
    for event in manifest["events"]:
        custom = {c["name"]: c["value"] for c in event["custom"]}
        assert (custom["Source"], custom["Custodian"]) == ("phone export", "Loris")
        assert custom["Export file"] == GROUP_ZIP
    (event,) = [e for e in manifest["events"] if e["body"].startswith("Come on...")]
    assert {"name": "Export lines", "value": "24-25"} in event["custom"]
    assert {"name": "Exported time", "value": "2019-06-20 16:03:07 (Europe/London)"} in (
        event["custom"]
    )


def test_it_makes_unmapped_authors_rsmf_participants_by_name(
    group: Conversation, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    _, manifest = rsmf_file(source_of(make_source, group), tmp_path)
    people = {p["id"]: p for p in manifest["participants"]}
    authors = {e["body"]: people[e["participant"]] for e in manifest["events"]}
    john = authors["Hey 👋"]
    assert john["display"] == "John (as named in the export)" and "account_id" not in john
    assert {"name": "Name as exported", "value": "John"} in john["custom"]
    assert authors["Yes"]["display"] == "Emily (as named in the export)"
    assert authors["Loris added Emily"]["display"] == "System line of a phone export"
    own = authors["Welcome to the chat example!"]
    assert own["id"].startswith("firm-")  # the custodian's messages are the firm's side
    (conversation,) = manifest["conversations"]
    assert conversation["type"] == "channel"


def test_it_gives_import_warnings_in_rsmf(
    impossible: Conversation, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    files(rsmf, source_of(make_source, impossible), tmp_path, "*.rsmf")
    events = [
        e for path in tmp_path.rglob("*.rsmf") for e in unpack(path.read_bytes())[1]["events"]
    ]
    (flagged,) = [e for e in events if "Groupname" in e["body"]]
    assert {"name": "Import warning", "value": IMPOSSIBLE_TIME} in flagged["custom"]


def test_it_says_so_in_the_rsmf_transcript(
    jane: Conversation, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    written = files(rsmf, source_of(make_source, jane), tmp_path, "*.rsmf")
    container, _ = unpack(written["2021-01-05.rsmf"])
    (text,) = [p for p in container.walk() if p.get_content_type() == "text/plain"]
    assert f"Jane Doe (as named in the export): <Media omitted> [{JANE} line 7]" in (
        text.get_content()
    )


# --------------------------------------------------------------------------- PDF


def test_it_marks_imported_messages_in_the_pdf(
    jane: Conversation,
    make_source: Callable[..., Source],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pdf, "RENDER_CHUNK", 5)
    (tmp_path / "out").mkdir()
    pdf.write(source_of(make_source, jane), DirectoryTarget(tmp_path / "out"))
    reader = PdfReader(tmp_path / "out" / "transcript.pdf")
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert f"I{JANE[1:]} line 6 · exported time 2021-01-05 15:07:00 (Europe/London)" in text
    assert "of which 7 imported from phone exports" in text
    assert "Jane Doe (as named in the export)" in text
    assert "Chat Jane Doe from a phone export" in text


def test_it_writes_import_warnings_into_the_pdf(
    impossible: Conversation, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    source = source_of(make_source, impossible)
    (tmp_path / "work").mkdir()
    html = "".join(pdf.pieces(source, list(source.parts()), tmp_path / "work"))
    assert f'<p class="x">Import warning: {IMPOSSIBLE_TIME}</p>' in html


def test_it_lists_imported_messages_in_the_pdf_manifest(
    jane: Conversation, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    source = source_of(make_source, jane)
    (tmp_path / "work").mkdir()
    list(pdf.pieces(source, list(source.parts()), tmp_path / "work"))
    listed = json.loads((tmp_path / "work" / "manifest.json").read_text())["messages"]
    assert len(listed) == 7
    assert listed[1]["imported"] == {"custodian": "Wolfgang", "file": ONE_TO_ONE, "lines": [2, 4]}


# --------------------------------------------------------------------------- subject access


def test_it_pseudonymises_authors_named_only_in_an_export(
    world: World, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    amelia = world.amelia.participant
    assert amelia is not None
    mapping = {"John": {"as": "number", "number": f"+{amelia.wa_id}"}}  # John is the subject
    imported(world, GROUP_ZIP, custodian="Loris", mapping=mapping)
    source = make_source(Scope.for_participant(amelia.wa_id, redact_others=True))
    rows = [r for r in csv_rows(source, tmp_path / "csv") if r["source"] == "phone export"]
    senders = {r["sender"] for r in rows if r["direction"] == "inbound" and r["type"] != "system"}
    assert senders == {latest_names({amelia.pk})[amelia.pk], "Participant 2"}
    bodies = [body(m) for m in emails(source, tmp_path / "eml")]
    assert not any("Author as exported: Emily" in b for b in bodies)
    assert any("Author as exported: Participant 2." in b for b in bodies)


# --------------------------------------------------------------------------- the bundle


@pytest.mark.usefixtures("fake_writers")
def test_it_proves_imported_messages_and_linked_lines_in_the_bundle(
    world: World, jane: Conversation, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    message = repeated(world)
    scope = Scope.for_search({"q": "", "channel": str(world.channel.pk)})
    path = make_bundle(make_source(scope), tmp_path / "bundle.zip")
    entries = manifest_of(path)["entries"]
    proved = {
        e["seq"] for e in entries if e["kind"] == "message.imported" and e["role"] == "message"
    }
    created = Message.objects.filter(source="phone_export").values_list("entry_id", flat=True)
    assert proved == set(created) and len(proved) == 8  # Jane's chat, and Carol's "ok"
    (line,) = [e for e in entries if e["role"] == "import"]
    assert line["message_seq"] == message.entry_id and line["kind"] == "message.imported"
    code, out = system_verify(path, "--key", checkpoints.verifier_key_text())
    assert code == 0, out
    assert "VERIFIED" in out


@real
def test_it_verifies_a_real_bundle_of_an_imported_zip(
    group: Conversation,
    make_source: Callable[..., Source],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pdf, "RENDER_CHUNK", 20)
    path = make_bundle(source_of(make_source, group), tmp_path / "bundle.zip")
    with zipfile.ZipFile(path) as bundle:
        names = bundle.namelist()
    assert sum(name.startswith("attachments/") for name in names) == 4  # the zip's media
    code, out = system_verify(path, "--key", checkpoints.verifier_key_text())
    assert code == 0, out
