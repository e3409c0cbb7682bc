import hashlib
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest

from exports import eml
from exports.scope import Scope
from exports.source import Part, Source
from exports.target import DirectoryTarget
from messaging import media
from messaging.media import open_media
from messaging.models import Attachment
from tests.exports.conftest import PNG, RICH_NAME, RICH_NUMBER, SAMPLES, XSS, Rich, World
from tests.mail_headers import HARD, decoded, longest_line, mailboxes, raw_headers


def export(source: Source, root: Path) -> dict[str, bytes]:
    eml.write(source, DirectoryTarget(root), "out/")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.eml")}


def parse(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=policy.default)


def by_wamid(files: dict[str, bytes]) -> dict[str, EmailMessage]:
    parsed = (parse(data) for data in files.values())
    return {str(m["X-ClientWindow-Wamid"]): m for m in parsed}


def text(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return cast(str, body.get_content()).replace("\r\n", "\n")  # lines end CRLF on the wire


def rich_files(rich: Rich, make_source: Any, tmp_path: Path) -> dict[str, bytes]:
    return export(make_source(Scope.for_conversation(rich.conversation.pk)), tmp_path)


def test_it_writes_one_file_per_message_named_by_seq(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    files = export(source, tmp_path)
    (part,) = source.parts()
    folder = f"out/eml/{rich.conversation.pk}-{RICH_NUMBER}"
    assert sorted(files) == sorted(f"{folder}/{r.message.entry_id}.eml" for r in part.rows())


def test_it_parses_back_to_the_same_text_sender_and_date(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    mails = by_wamid(rich_files(rich, make_source, tmp_path))
    for wamid, sample in SAMPLES.items():
        mail, message = mails[wamid], rich.message(wamid)
        assert text(mail).startswith(sample + "\n")
        (sender,) = mail["From"].addresses
        assert (sender.display_name, sender.addr_spec) == (
            RICH_NAME,
            f"+{RICH_NUMBER}@whatsapp.invalid",
        )
        assert mail["Date"].datetime == message.sent_at
        assert mail["X-ClientWindow-Ledger-Seq"] == str(message.entry_id)
        # long values fold onto a continuation line; Python keeps its leading space
        assert mail["X-ClientWindow-Leaf-Hash"].strip() == bytes(message.entry.leaf_hash).hex()


def test_it_sends_the_firms_messages_from_the_channel(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    mail = by_wamid(rich_files(rich, make_source, tmp_path))["wamid.rich-out"]
    assert mail["From"].addresses[0].display_name == rich.conversation.channel.name
    assert mail["To"].addresses[0].addr_spec == f"+{RICH_NUMBER}@whatsapp.invalid"
    assert mail["X-ClientWindow-Direction"] == "outbound"
    assert mail["X-ClientWindow-Status"] == "read"
    assert "Reaction 🙏 by" in text(mail)


def test_it_threads_a_reply_under_the_message_it_quotes(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    mails = by_wamid(rich_files(rich, make_source, tmp_path))
    parent, reply = mails["wamid.rich-ar"], mails["wamid.rich-reply"]
    assert reply["In-Reply-To"] == reply["References"] == parent["Message-ID"]
    assert parent["Message-ID"] == eml.message_id(rich.conversation.channel, "wamid.rich-ar")
    assert SAMPLES["wamid.rich-ar"] in text(reply)


def test_it_keeps_deleted_and_edited_content(rich: Rich, make_source: Any, tmp_path: Path) -> None:
    mails = by_wamid(rich_files(rich, make_source, tmp_path))
    deleted, edited = text(mails["wamid.rich-gone"]), text(mails["wamid.rich-typo"])
    assert deleted.startswith("[Deleted by the sender at ")
    assert "Buy before the announcement" in deleted
    assert "X-ClientWindow-Deleted-At" in mails["wamid.rich-gone"]
    assert edited.startswith("I will wire 10,000 tomorrow\n")
    assert "1. " in edited and "I will wire 10,000 tomorow\n" in edited


def test_it_attaches_stored_media_with_their_exact_bytes(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    mails = by_wamid(rich_files(rich, make_source, tmp_path))
    for wamid in ("wamid.rich-doc", "wamid.rich-img"):
        stored = Attachment.objects.get(message=rich.message(wamid)).file
        assert stored is not None
        (part,) = mails[wamid].iter_attachments()
        data = part.get_content()
        with open_media(stored) as handle:
            assert data == handle.read()
        assert hashlib.sha256(data).hexdigest() == stored.sha256
        assert mails[wamid]["X-ClientWindow-Attachment-SHA256"].strip() == stored.sha256
    (image,) = mails["wamid.rich-img"].iter_attachments()
    assert image.get_content() == PNG and image.get_content_type() == "image/png"


def test_it_makes_hostile_file_names_safe(rich: Rich, make_source: Any, tmp_path: Path) -> None:
    mail = by_wamid(rich_files(rich, make_source, tmp_path))["wamid.rich-doc"]
    (part,) = mail.iter_attachments()
    seq = rich.message("wamid.rich-doc").entry_id
    assert part.get_filename() == f"{seq}-etc-passwd-statement.pdf"
    assert "“../../etc/passwd statement.pdf”" in text(mail)  # the original, as evidence


def test_it_notes_media_that_could_not_be_archived(
    world: World, make_source: Any, tmp_path: Path
) -> None:
    message = world.message("wamid.xss-doc")
    media._record(message, "media-doc", Attachment.Outcome.UNAVAILABLE, "expired at Meta")
    mail = by_wamid(export(make_source(Scope.for_conversation(world.hostile.pk)), tmp_path))
    assert "Document not archived: unavailable (expired at Meta)." in text(mail["wamid.xss-doc"])
    assert list(mail["wamid.xss-doc"].iter_attachments()) == []


def test_it_keeps_hostile_names_inside_their_headers(
    world: World, make_source: Any, tmp_path: Path
) -> None:
    source = make_source(Scope.for_conversation(world.hostile.pk))
    (part,) = source.parts()
    row = next(part.rows())
    assert parse(eml.message_bytes(source, part, row))["From"].addresses[0].display_name == XSS
    forged = Part(part.conversation, "Eve\r\nBcc: victim@example.com\r\n\r\nhi", 1, None, None)
    mail = parse(eml.message_bytes(source, forged, row))
    assert mail.get_all("Bcc") is None
    assert mail["From"].addresses[0].display_name == "Eve Bcc: victim@example.com hi"
    assert "\nBcc:" not in eml.message_bytes(source, forged, row).decode("ascii")


def test_it_writes_the_same_bytes_for_the_same_source(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    assert export(source, tmp_path / "a") == export(source, tmp_path / "b")


@pytest.mark.parametrize("name", HARD)
def test_it_writes_names_no_header_could_carry_as_they_are(
    world: World, make_source: Any, name: str
) -> None:
    """As encoded words that fold within 78 octets and read back as the name: a journal copy
    with a longer line would bounce, and a name made of encoded words must not become a
    sender (tests/exports/test_headers.py has the rule for all names)."""
    source = make_source(Scope.for_conversation(world.hostile.pk))
    (part,) = source.parts()
    row = next(r for r in part.rows() if r.message.direction == "in")
    named = Part(part.conversation, name, 1, None, None)
    data = eml.message_bytes(source, named, row)
    number = world.hostile.participant.wa_id
    assert mailboxes(raw_headers(data, "From")[0]) == [(name, f"+{number}@whatsapp.invalid")]
    assert decoded(raw_headers(data, "Subject")[0]) == f"WhatsApp: {named.title}"
    assert named.title.startswith(f"{name} (+{number})")
    assert longest_line(data) <= 78
    (sender,) = parse(data)["From"].addresses  # Python's reader finds the one sender too
    assert sender.addr_spec == f"+{number}@whatsapp.invalid"
    # machine values are written as they are, whatever the names around them
    for name, value in [
        ("X-ClientWindow-Leaf-Hash", bytes(row.message.entry.leaf_hash).hex()),
        ("X-ClientWindow-Wamid", row.message.wamid),
    ]:
        assert [v.strip() for v in raw_headers(data, name)] == [value]
