import hashlib
import io
import json
import zipfile
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, ValidationError

from exports import rsmf
from exports.scope import Scope
from exports.source import Source
from exports.target import DirectoryTarget
from messaging.models import Attachment, Conversation
from tests.exports.conftest import NOW, RICH_NAME, RICH_NUMBER, SAMPLES, Rich, World
from tests.mail_headers import LOOKALIKES, ZALGO, decoded, longest_line, mailboxes, raw_headers
from tests.review.conftest import inbound, seal

SCHEMA = json.loads((Path(rsmf.__file__).parent / "schemas/rsmf_schema_2_0_0.json").read_bytes())


def export(source: Source, root: Path, **options: Any) -> dict[str, bytes]:
    rsmf.write(source, DirectoryTarget(root), "out/", **options)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.rsmf"))}


def unpack(data: bytes) -> tuple[EmailMessage, zipfile.ZipFile, dict[str, Any]]:
    mail = message_from_bytes(data, policy=policy.default)
    (attachment,) = mail.iter_attachments()
    assert attachment.get_filename() == "rsmf.zip"
    archive = zipfile.ZipFile(io.BytesIO(attachment.get_content()))
    return mail, archive, json.loads(archive.read("rsmf_manifest.json"))


def events(files: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for data in files.values() for e in unpack(data)[2]["events"]}


def rich_files(rich: Rich, make_source: Any, tmp_path: Path, **options: Any) -> dict[str, bytes]:
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    return export(source, tmp_path, **options)


def every_conversation(make_source: Any, tmp_path: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for n, convo in enumerate(Conversation.objects.order_by("pk")):
        files |= export(make_source(Scope.for_conversation(convo.pk)), tmp_path / str(n))
    return files


def test_it_writes_one_file_per_conversation_per_utc_day(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    late = {"id": "wamid.next-day", "timestamp": str(NOW + 86_400), "type": "text"}
    seal(inbound(RICH_NUMBER, RICH_NAME, {**late, "text": {"body": "Any news?"}}))
    files = rich_files(rich, make_source, tmp_path)
    folder = f"out/rsmf/{rich.conversation.pk}-{RICH_NUMBER}"
    assert list(files) == [f"{folder}/2026-09-21.rsmf", f"{folder}/2026-09-22.rsmf"]
    collections = {unpack(data)[2]["eventcollectionid"] for data in files.values()}
    assert len(collections) == 1
    assert [len(unpack(data)[2]["events"]) for data in files.values()] == [len(SAMPLES) + 6, 1]


def test_it_validates_every_manifest_against_the_official_schema(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    validator = Draft7Validator(SCHEMA, format_checker=rsmf.FORMATS)  # date-time checked too
    files = every_conversation(make_source, tmp_path)
    assert len(files) >= 3
    for data in files.values():
        assert data.startswith(b"X-RSMF-Version: 2.0.0\r\n")
        mail, archive, manifest = unpack(data)
        validator.validate(manifest)
        assert manifest["version"] == "2.0.0"
        assert all("/" not in name for name in archive.namelist())  # flat, manifest at the root
        assert mail["X-RSMF-EventCount"] == str(len(manifest["events"]))
        assert mail["Subject"] is None and mail["Message-ID"] is None


def test_it_resolves_every_parent_and_attachment_inside_its_own_zip(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    files = every_conversation(make_source, tmp_path)
    attachments = 0
    for data in files.values():
        _, archive, manifest = unpack(data)
        ids = {e["id"] for e in manifest["events"]}
        for event in manifest["events"]:
            assert event.get("parent", event["id"]) in ids
            for attachment in event.get("attachments", []):
                content = archive.read(attachment["id"])
                assert len(content) == attachment["size"]
                stored = Attachment.objects.get(message__wamid=event["id"]).file
                assert stored is not None and hashlib.sha256(content).hexdigest() == stored.sha256
                attachments += 1
    assert attachments == 3  # the hostile conversation's image and the rich document and image


def test_it_keeps_deletions_edits_reactions_and_read_receipts(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    found = events(rich_files(rich, make_source, tmp_path))
    client = f"wa-{RICH_NUMBER}"
    assert found["wamid.rich-gone"]["deleted"] is True
    assert found["wamid.rich-gone"]["body"] == "Buy before the announcement"
    (edit,) = found["wamid.rich-typo"]["edits"]
    assert (edit["previous"], edit["new"]) == (
        "I will wire 10,000 tomorow",
        "I will wire 10,000 tomorrow",
    )
    assert edit["participant"] == client and edit["timestamp"] == "2026-09-21T14:17:35Z"
    reply, out = found["wamid.rich-reply"], found["wamid.rich-out"]
    assert reply["parent"] == "wamid.rich-ar"
    assert out["reactions"] == [{"value": "🙏", "count": 1, "participants": [client]}]
    assert [(r["action"], r["participant"]) for r in out["read_receipts"]] == [
        ("delivered", client),
        ("read", client),
    ]
    assert out["direction"] == "outgoing" and found["wamid.rich-ar"]["direction"] == "incoming"
    assert {e["body"] for e in found.values()} >= set(SAMPLES.values())


def test_it_carries_the_ledger_evidence_of_each_event(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    found = events(rich_files(rich, make_source, tmp_path))
    message = rich.message("wamid.rich-ar")
    custom = {c["name"]: c["value"] for c in found["wamid.rich-ar"]["custom"]}
    assert custom["Ledger seq"] == str(message.entry_id)
    assert custom["Leaf hash"] == bytes(message.entry.leaf_hash).hex()


def test_it_fills_every_field_rsmf_1_0_required(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    _, _, manifest = unpack(next(iter(rich_files(rich, make_source, tmp_path).values())))
    assert all(p["display"] for p in manifest["participants"])
    (conversation,) = manifest["conversations"]
    assert conversation["display"] and conversation["type"] == "direct"
    assert conversation["platform"] == "whatsapp"
    assert conversation["custodian"] in conversation["participants"]
    for event in manifest["events"]:
        assert event["participant"] and event["conversation"] and event["timestamp"]
        assert all("count" in r and "participants" in r for r in event.get("reactions", []))
        assert all("display" in a and "size" in a for a in event.get("attachments", []))
        assert all("timestamp" in e for e in event.get("edits", []))


def test_it_splits_a_day_past_the_event_limit(rich: Rich, make_source: Any, tmp_path: Path) -> None:
    files = rich_files(rich, make_source, tmp_path, max_events=5)
    folder = f"out/rsmf/{rich.conversation.pk}-{RICH_NUMBER}"
    names = ["2026-09-21.rsmf", "2026-09-21-2.rsmf", "2026-09-21-3.rsmf"]
    assert sorted(files) == sorted(f"{folder}/{name}" for name in names)
    manifests = [unpack(files[f"{folder}/{name}"])[2] for name in names]
    assert [len(m["events"]) for m in manifests] == [5, 5, 2]
    assert len({m["eventcollectionid"] for m in manifests}) == 1
    reply = events(files)["wamid.rich-reply"]  # its parent is in the first slice
    assert "parent" not in reply
    custom = {c["name"]: c["value"] for c in reply["custom"]}
    assert custom["Reply to"] == "wamid.rich-ar (outside this file)"


def test_it_gives_a_group_the_channel_type_and_its_members(
    world: World, make_source: Any, tmp_path: Path
) -> None:
    group, at = "120363041234567890", str(NOW + 500)
    first = {"id": "wamid.g1", "timestamp": at, "type": "text", "group_id": group}
    second = {**first, "id": "wamid.g2", "context": {"from": "447700900001", "id": "wamid.g1"}}
    seal(
        inbound("447700900001", "Ann", {**first, "text": {"body": "Hello all"}}),
        inbound("447700900002", "Bob", {**second, "text": {"body": "Hi Ann"}}),
    )
    convo = Conversation.objects.get(group_id=group)
    (data,) = export(make_source(Scope.for_conversation(convo.pk)), tmp_path).values()
    _, _, manifest = unpack(data)
    (conversation,) = manifest["conversations"]
    assert conversation["type"] == "channel"
    assert {p["display"] for p in manifest["participants"]} == {"Ann", "Bob", "Demo wealth desk"}
    assert [e["participant"] for e in manifest["events"]] == ["wa-447700900001", "wa-447700900002"]
    assert manifest["events"][1]["parent"] == "wamid.g1"


def test_it_refuses_a_manifest_with_dangling_references() -> None:
    event = {"id": "m2", "type": "message", "participant": "P1", "conversation": "C1"}
    manifest = {
        "version": "2.0.0",
        "participants": [{"id": "P1"}],
        "conversations": [{"id": "C1", "platform": "x", "participants": ["P1"], "custodian": "P1"}],
        "events": [{**event, "parent": "m1"}],
    }
    with pytest.raises(ValueError, match="parent"):
        rsmf.check_references(manifest, [])
    with pytest.raises(ValidationError):
        rsmf.VALIDATOR.validate({**manifest, "version": 2})


def test_it_writes_the_same_bytes_for_the_same_source(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    assert export(source, tmp_path / "a") == export(source, tmp_path / "b")


def test_its_container_headers_carry_any_name_as_typed(
    world: World, make_source: Any, tmp_path: Path
) -> None:
    """The container's To lists every participant: a name made of encoded words (one decoding
    to another address) stays one name of one address, and a long name folds within 78."""
    group, at = "120363049999999999", str(NOW + 600)
    first = {"id": "wamid.h1", "timestamp": at, "type": "text", "group_id": group}
    names = {"447700900011": LOOKALIKES[1], "447700900012": ZALGO * 2, "447700900013": "Bob"}
    seal(
        *(
            inbound(number, name, {**first, "id": f"wamid.h{number}", "text": {"body": "hi"}})
            for number, name in names.items()
        )
    )
    convo = Conversation.objects.get(group_id=group)
    (data,) = export(make_source(Scope.for_conversation(convo.pk)), tmp_path).values()
    members = {(name, f"+{number}@whatsapp.invalid") for number, name in names.items()}
    (to,) = raw_headers(data, "To")
    assert members <= set(mailboxes(to))
    assert len(mailboxes(to)) == len(names) + 1  # and the firm
    addresses = {a.addr_spec for a in unpack(data)[0]["To"].addresses}  # Python's reader too
    assert addresses == {address for _, address in mailboxes(to)}
    (participants,) = raw_headers(data, "X-RSMF-Participants")
    assert all(name in decoded(participants) for name in names.values())
    assert longest_line(data) <= 78
