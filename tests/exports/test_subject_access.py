"""Subject access exports (GDPR Art. 15): a participant scope with `redact_others`, in which
everyone but the subject is "Participant <n>" in every format, and the bundle withholds the
ledger contents that could name them yet still verifies.

The world: the subject in a group chat with two other people (one quoted by the subject's
reply, one reacting to it), and the subject's own conversation with the firm."""

import base64
import io
import json
import re
import zipfile
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from exports import csv as csv_export
from exports import eml, evidence, formats, pdf, rsmf
from exports.models import Export
from exports.scope import Scope
from exports.source import Part, Redaction, Source, pseudonym
from exports.target import DirectoryTarget
from messaging import simulator
from messaging.models import Conversation, Message, Participant
from review.transcript import Row, decorate
from tests.exports.conftest import NOW, World
from tests.exports.test_api import URL, api
from tests.exports.test_bundle import fake_write, make_bundle, system_verify
from tests.exports.test_jobs import Recorder
from tests.exports.test_rsmf import unpack
from tests.exports.test_verify_py import verifier
from tests.review.conftest import envelope, inbound, seal

SUBJECT, SUBJECT_NAME = "447700900101", "Sam Subject"
ANN, ANN_NAME = "447700900202", "Ann Other"  # reacts to the subject's reply
BOB, BOB_NAME = "447700900303", "Bob Third"  # asks the question the subject replies to
OTHERS = (ANN, ANN_NAME, BOB, BOB_NAME)
GROUP = "120363049999999999"
FIRM = simulator.DEMO_CHANNEL["display_number"]


def said(wamid: str, at: int, body: str, **more: Any) -> dict[str, Any]:
    return {"id": wamid, "timestamp": str(NOW + at), "type": "text", "text": {"body": body}, **more}


def in_group(wa_id: str, name: str, message: dict[str, Any]) -> bytes:
    return inbound(wa_id, name, {**message, "group_id": GROUP})


@pytest.fixture
def group(world: World) -> Conversation:
    """Bob asks, the subject replies to him, Ann reacts to that, Ann and the subject go on; and
    the subject writes to the firm directly, which answers (read by the subject)."""
    quoting = {"context": {"from": BOB, "id": "wamid.g-bob"}}
    thumbs = {"message_id": "wamid.g-sam", "emoji": "👍"}
    reaction = {"id": "wamid.g-react", "timestamp": str(NOW + 1020), "type": "reaction"}
    answer = {**said("wamid.d-firm", 1110, "Confirmed."), "to": SUBJECT}
    read = {"id": "wamid.d-firm", "status": "read", "timestamp": str(NOW + 1120)}
    seal(
        in_group(BOB, BOB_NAME, said("wamid.g-bob", 1000, "Who sends it?")),
        in_group(SUBJECT, SUBJECT_NAME, said("wamid.g-sam", 1010, "I send it today", **quoting)),
        in_group(ANN, ANN_NAME, {**reaction, "reaction": thumbs}),
        in_group(ANN, ANN_NAME, said("wamid.g-ann", 1030, "Thank you")),
        in_group(SUBJECT, SUBJECT_NAME, said("wamid.g-sam2", 1040, "Done")),
        inbound(SUBJECT, SUBJECT_NAME, said("wamid.d-sam", 1100, "Please confirm the transfer")),
        envelope("smb_message_echoes", {"message_echoes": [{**answer, "from": FIRM}]}),
        envelope("messages", {"statuses": [{**read, "recipient_id": SUBJECT}]}),
    )
    return Conversation.objects.get(group_id=GROUP)


def subject_source(make_source: Callable[..., Source], *, redact: bool) -> Source:
    source: Source = make_source(Scope.for_participant(f"+{SUBJECT}", redact_others=redact))
    return source


def leaks(text: str) -> list[str]:
    """The other people's numbers and names that `text` shows (with or without spaces)."""
    return [who for who in OTHERS if who in text or who.replace(" ", "") in text]


# ------------------------------------------------------------------ what each format says


def csv_text(source: Source, root: Path) -> str:
    csv_export.write(source, DirectoryTarget(root))
    return (root / "messages.csv").read_text("utf-8-sig")


def eml_text(source: Source, root: Path) -> str:
    """Every header and text body, decoded (quoted-printable may fold a number)."""
    eml.write(source, DirectoryTarget(root))
    shown = []
    for path in sorted(root.rglob("*.eml")):
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        body = mail.get_body(("plain",))
        assert body is not None
        shown += [f"{k}: {v}" for k, v in mail.items()] + [body.get_content()]
    return "\n".join([*shown, *(str(p.relative_to(root)) for p in root.rglob("*"))])


def rsmf_text(source: Source, root: Path) -> str:
    """Every header, the transcript and the manifest of every .rsmf file."""
    rsmf.write(source, DirectoryTarget(root))
    shown = []
    for path in sorted(root.rglob("*.rsmf")):
        mail, _, manifest = unpack(path.read_bytes())
        text = next(part for part in mail.walk() if part.get_content_type() == "text/plain")
        shown += [f"{k}: {v}" for k, v in mail.items()] + [text.get_content()]
        shown.append(json.dumps(manifest, ensure_ascii=False))
    return "\n".join(shown)


def pdf_text(source: Source, root: Path) -> str:
    """The PDF's text without spaces or bidi isolates, so that names and numbers read whole."""
    pdf.write(source, DirectoryTarget(root))
    pages = PdfReader(root / "transcript.pdf").pages
    text = "".join(page.extract_text() for page in pages)
    return re.sub(r"[\s\u2066-\u2069]", "", text)


READERS = {"csv": csv_text, "eml": eml_text, "rsmf": rsmf_text, "pdf": pdf_text}


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_it_hides_other_people_in_every_format(
    fmt: str, group: Conversation, make_source: Any, tmp_path: Path
) -> None:
    text = READERS[fmt](subject_source(make_source, redact=True), tmp_path)
    assert leaks(text) == []
    assert SUBJECT in text and "Isendittoday" in text.replace(" ", "")


# The CSV and the PDF name no reactor or quoted author, redacted or not: only these two do.
@pytest.mark.parametrize("fmt", ["eml", "rsmf"])
def test_it_names_the_reactor_by_pseudonym_where_the_export_shows_reactors(
    fmt: str, group: Conversation, make_source: Any, tmp_path: Path
) -> None:
    plain = READERS[fmt](subject_source(make_source, redact=False), tmp_path / "plain")
    redacted = READERS[fmt](subject_source(make_source, redact=True), tmp_path / "redacted")
    assert ANN in plain and "Participant 3" not in plain
    assert "Participant 3" in redacted  # Ann: Bob, quoted first, is Participant 2


def test_it_keeps_the_subjects_name_and_what_others_wrote(
    group: Conversation, make_source: Any, tmp_path: Path
) -> None:
    mails = eml_text(subject_source(make_source, redact=True), tmp_path)
    assert SUBJECT_NAME in mails
    assert "Who sends it?" in mails  # what Bob wrote stays, as the reply's context


def test_it_numbers_pseudonyms_by_first_appearance_in_every_pass(
    group: Conversation, make_source: Any
) -> None:
    source = subject_source(make_source, redact=True)
    for _ in range(2):
        rows = {r.message.wamid: r for part in source.parts() for r in part.rows()}
        row = rows["wamid.g-sam"]
        assert row.sender_name == SUBJECT_NAME and row.message.sender.wa_id == SUBJECT
        assert pseudonym(row.quoted.sender) == "Participant 2"  # Bob
        assert [pseudonym(r.sender) for r in row.reactions] == ["Participant 3"]  # Ann
        assert row.message.payload["context"]["from"] == "participant-2"
        assert row.reactions[0].payload["from"] == "participant-3"


def test_it_leaves_an_unredacted_export_as_it_was(group: Conversation, make_source: Any) -> None:
    source = subject_source(make_source, redact=False)
    assert source.redaction is None
    rows = {r.message.wamid: r for part in source.parts() for r in part.rows()}
    assert rows["wamid.g-sam"].reactions[0].sender.wa_id == ANN
    assert rows["wamid.g-sam"].message.payload["context"]["from"] == BOB


# ------------------------------------------------------------------ others' own messages


def group_rows(group: Conversation, source: Source) -> tuple[Part, list[Row]]:
    """Every message of the group, Bob's and Ann's too, as a writer gets them."""
    messages = list(Message.objects.filter(conversation=group, type="text").order_by("sent_at"))
    rows = decorate(group, messages, upto=source.tree_size)
    if source.redaction is not None:
        source.redaction.rows(group, rows)
    return Part(group, "", len(rows), None, None), rows


def writers_text(part: Part, rows: list[Row], source: Source, media: Path) -> str:
    """What the CSV, EML, PDF and RSMF writers make of each row."""
    shown = [" ".join(csv_export.cells(part, row)) for row in rows]
    for row in rows:
        mail = message_from_bytes(eml.message_bytes(source, part, row), policy=policy.default)
        shown.append(f"{mail['From']} {mail['To']}")
        item = pdf.item(row, part, media)
        shown.append(f"{item.name} {item.number} {' '.join(item.reactions)}")
    slice_ = rsmf._Slice(source, part, "2026-09-21", "group.rsmf")
    for row in rows:
        slice_.add(row)
    return "\n".join([*shown, json.dumps(slice_.manifest(), ensure_ascii=False), *slice_.lines])


def test_every_writer_shows_other_peoples_messages_by_pseudonym(
    group: Conversation, make_source: Any, tmp_path: Path
) -> None:
    source = subject_source(make_source, redact=True)
    part, rows = group_rows(group, source)
    text = writers_text(part, rows, source, tmp_path)
    assert leaks(text) == []
    assert "Participant 2" in text and "Participant 3" in text and SUBJECT_NAME in text
    assert "Who sends it?" in text and "Thank you" in text  # what they wrote is kept


def test_every_writer_names_them_without_redaction(
    group: Conversation, make_source: Any, tmp_path: Path
) -> None:
    source = subject_source(make_source, redact=False)
    part, rows = group_rows(group, source)
    text = writers_text(part, rows, source, tmp_path)
    assert sorted(leaks(text)) == sorted(OTHERS)
    assert "Participant" not in text


def test_it_pseudonymises_a_shared_contact_cards_number_but_keeps_its_text(
    group: Conversation, make_source: Any
) -> None:
    card = {"name": {"formatted_name": "Ann at home"}, "phones": [{"phone": "+44 7700 900202"}]}
    shared = {"id": "wamid.g-card", "timestamp": str(NOW + 1050), "type": "contacts"}
    seal(in_group(SUBJECT, SUBJECT_NAME, {**shared, "contacts": [card]}))
    source = subject_source(make_source, redact=True)
    rows = {r.message.wamid: r for part in source.parts() for r in part.rows()}
    (shown,) = rows["wamid.g-card"].body
    assert shown["phones"] == [{"phone": "participant-3"}]
    assert shown["name"] == card["name"] and rows["wamid.g-card"].current_text == "Ann at home"


# ------------------------------------------------------------------ pseudonyms, for all inputs

# Distinct participants: the subject, two others by number, one by user id, one by both.
PEOPLE = [(SUBJECT, ""), (ANN, ""), (BOB, ""), ("", "US.zed"), ("15550001111", "US.other")]


@given(st.lists(st.sampled_from(PEOPLE), max_size=25))
def test_pseudonyms_are_stable_distinct_and_numbered_by_first_appearance(
    appearances: list[tuple[str, str]],
) -> None:
    people = [Participant(key=f"{n}/{u}", wa_id=n, user_id=u) for n, u in appearances]
    redaction = Redaction(SUBJECT)
    shown = [redaction.person(person) for person in people]
    others = list(dict.fromkeys(p.key for p in people if p.wa_id != SUBJECT))
    expected = [
        "" if p.wa_id == SUBJECT else f"Participant {others.index(p.key) + 2}" for p in people
    ]
    assert [pseudonym(s) for s in shown] == expected
    assert all(
        s is p if p.wa_id == SUBJECT else s.wa_id == "" for s, p in zip(shown, people, strict=True)
    )
    again = Redaction(SUBJECT)
    assert [pseudonym(again.person(p)) for p in people] == expected


def test_one_person_keeps_one_pseudonym_by_number_or_user_id() -> None:
    redaction = Redaction(SUBJECT)
    first = redaction.person(Participant(key="a", wa_id=ANN, user_id="US.9"))
    assert redaction.person(Participant(key="b", user_id="US.9")) is first
    assert redaction.person(Participant(key="c", wa_id=ANN)) is first
    bob = redaction.person(Participant(key="d", wa_id=BOB))
    assert bob is not first and redaction.person(bob) is bob


# ------------------------------------------------------------------ the evidence bundle


def manifest_and_contents(path: Path) -> tuple[dict[str, Any], str]:
    """The manifest, and its text with every disclosed content decoded beside it."""
    with zipfile.ZipFile(path) as archive:
        raw = archive.read("manifest.json").decode()
    manifest = json.loads(raw)
    decoded = [
        base64.b64decode(value["content"]).decode("utf-8", "replace")
        for entry in manifest["entries"]
        for value in entry["contents"].values()
        if isinstance(value, dict)
    ]
    return manifest, "\n".join([raw, *decoded])


def test_a_redacted_bundle_withholds_what_names_others_and_still_verifies(
    group: Conversation, make_source: Any, tmp_path: Path
) -> None:
    path = make_bundle(subject_source(make_source, redact=True), tmp_path / "bundle.zip")
    manifest, text = manifest_and_contents(path)
    assert leaks(text) == [] and SUBJECT in text
    assert manifest["export"]["label"] == f"everything with +{SUBJECT} (others redacted)"
    withheld = [e for e in manifest["entries"] if evidence.WITHHELD in e["contents"].values()]
    assert {e["role"] for e in withheld} == {"message", "reaction"}
    assert all(set(e["contents"]) == {"item", "text", "wamid"} for e in withheld)
    assert all(e["contents"]["item"] == evidence.WITHHELD for e in withheld)
    code, out = system_verify(path)
    assert code == 0, out
    assert f"note {len(withheld)} contents withheld" in out


def test_an_unredacted_bundle_still_discloses_them(
    group: Conversation, make_source: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_writer = formats.writer  # the real bundle around stand-in writers: the manifest counts
    monkeypatch.setattr(
        formats, "writer", lambda f: real_writer(f) if f == "bundle" else fake_write(f)
    )
    path = make_bundle(subject_source(make_source, redact=False), tmp_path / "bundle.zip")
    manifest, text = manifest_and_contents(path)
    assert ANN in text and BOB in text
    assert not any(evidence.WITHHELD in e["contents"].values() for e in manifest["entries"])


def contents_check(contents: dict[str, Any], body: dict[str, Any], *, redacted: bool) -> Any:
    return verifier.check_contents(contents, body, "entry 7", verifier.Tally(redacted=redacted))


def test_verify_py_accepts_withheld_contents_only_where_they_may_be() -> None:
    body = {"commit.item": "ab" * 32}
    assert contents_check({"item": evidence.WITHHELD}, body, redacted=True) == {}
    with pytest.raises(verifier.Failure, match="not redacted"):
        contents_check({"item": evidence.WITHHELD}, body, redacted=False)
    with pytest.raises(verifier.Failure, match="commits to none"):
        contents_check({"text": evidence.WITHHELD}, body, redacted=True)


# ------------------------------------------------------------------ the scope, asked for


def test_it_refuses_redaction_outside_a_participant_scope(group: Conversation) -> None:
    with pytest.raises(ValidationError, match="participant export only"):
        Scope.requested("conversation", conversation=group.pk, redact_others=True)
    with pytest.raises(ValidationError, match="participant export only"):
        Scope.requested("search", query={"q": "transfer"}, redact_others=True)
    with pytest.raises(ValidationError, match="participant export only"):
        Scope.from_json({"kind": "conversation", "conversation": group.pk, "redact_others": True})


def test_it_serialises_redaction_only_when_set() -> None:
    plain, redacted = (
        Scope.for_participant(SUBJECT),
        Scope.for_participant(SUBJECT, redact_others=True),
    )
    assert plain.to_json() == {"kind": "participant", "participant": SUBJECT}
    assert redacted.to_json() == {**plain.to_json(), "redact_others": True}
    assert Scope.from_json(redacted.to_json()) == redacted
    assert Scope.from_json(plain.to_json()) == plain
    assert redacted.label() == f"everything with +{SUBJECT} (others redacted)"


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> None:
    settings.EXPORT_ROOT = tmp_path / "exports"
    monkeypatch.setattr(formats, "writer", lambda fmt: Recorder())


@pytest.mark.usefixtures("recorder")
def test_the_portal_asks_for_a_redacted_participant_export(
    client: Any, group: Conversation, legal: Any
) -> None:
    client.force_login(legal)
    data = {"scope": "participant", "participant": f"+{SUBJECT}", "format": "pdf"}
    assert "Redact other people" in client.get(reverse("exports:list")).content.decode()
    response = client.post(reverse("exports:create"), {**data, "redact_others": "on"})
    assert response.status_code == 302
    export = Export.objects.get()
    assert export.scope["redact_others"] is True and export.scope_label.endswith(
        "(others redacted)"
    )


@pytest.mark.usefixtures("recorder")
def test_the_portal_refuses_redaction_of_a_conversation(
    client: Any, group: Conversation, legal: Any
) -> None:
    client.force_login(legal)
    data = {
        "scope": "conversation",
        "conversation": group.pk,
        "format": "pdf",
        "redact_others": "on",
    }
    response = client.post(reverse("exports:create"), data)
    assert response.status_code == 400 and "participant export only" in response.content.decode()
    assert not Export.objects.exists()


@pytest.mark.usefixtures("recorder")
def test_the_api_takes_redaction_for_participant_scopes_only(
    group: Conversation, auditor: Any
) -> None:
    client = api(auditor)
    scope = {"kind": "participant", "participant": SUBJECT, "redact_others": True}
    created = client.post(URL, {"format": "csv", "scope": scope}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["scope"]["redact_others"] is True
    wrong = {"kind": "conversation", "conversation": group.pk, "redact_others": True}
    refused = client.post(URL, {"format": "csv", "scope": wrong}, format="json")
    assert refused.status_code == 400 and "participant export only" in str(
        refused.json()["errors"]["scope"]
    )


@pytest.mark.usefixtures("recorder")
def test_the_command_takes_redact_others(group: Conversation, tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("export", "--participant", SUBJECT, "--redact-others", "--format", "eml",
                 "--output", str(tmp_path / "sar"), stdout=out)  # fmt: skip
    assert Export.objects.get().scope["redact_others"] is True
    assert "(others redacted)" in out.getvalue()
    with pytest.raises(CommandError, match="participant export only"):
        call_command("export", "--conversation", str(group.pk), "--redact-others", "--format",
                     "eml", "--output", str(tmp_path / "no"))  # fmt: skip
