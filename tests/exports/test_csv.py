import csv
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from access.spreadsheets import FORMULA_START
from exports import csv as csv_export
from exports.scope import Scope
from exports.source import Part, Source
from exports.target import DirectoryTarget
from review.transcript import Row
from tests.exports.conftest import SAMPLES, Rich

# What a spreadsheet may execute when a cell starts with it (the quote is the neutraliser).
FORMULA = set(FORMULA_START) - {"'"}


def export(source: Source, root: Path) -> bytes:
    csv_export.write(source, DirectoryTarget(root), "out/")
    return (root / "out/messages.csv").read_bytes()


def table(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


@pytest.fixture
def edited(rich: Rich, make_source: Any) -> tuple[Part, Row]:
    """The rich conversation's edited message, to be given arbitrary text in memory."""
    (part,) = make_source(Scope.for_conversation(rich.conversation.pk)).parts()
    (row,) = [r for r in part.rows() if r.edits]
    return part, row


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(), edit=st.text(), name=st.text())
def test_it_never_starts_a_cell_with_a_formula_character(
    edited: tuple[Part, Row], text: str, edit: str, name: str
) -> None:
    part, row = edited
    part.name = row.sender_name = name
    row.message.text, row.edits[-1].text = text, edit
    data = csv_export.encode([csv_export.cells(part, row)]).decode()
    (cells,) = csv.reader(io.StringIO(data, newline=""))
    assert not [cell for cell in cells if cell[:1] in FORMULA]
    assert (cells[11], cells[12]) == tuple(csv_export.neutralise(t) for t in (edit, text))


@given(st.text())
def test_it_neutralises_reversibly(text: str) -> None:
    cell = csv_export.neutralise(text)
    assert cell[:1] not in FORMULA
    assert (cell[1:] if cell.startswith("'") else cell) == text


def test_it_neutralises_the_formula_sample(rich: Rich, make_source: Any, tmp_path: Path) -> None:
    rows = table(export(make_source(Scope.for_conversation(rich.conversation.pk)), tmp_path))
    (row,) = [r for r in rows if r["wamid"] == "wamid.rich-formula"]
    assert row["text"] == "'" + SAMPLES["wamid.rich-formula"]
    assert {r["text"] for r in rows} >= set(SAMPLES.values()) - {SAMPLES["wamid.rich-formula"]}


def test_it_lists_every_message_of_the_scope_once(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    source = make_source(Scope.for_search({"direction": "in"}))
    rows = table(export(source, tmp_path))
    assert len(rows) == source.count() > len(SAMPLES)
    assert sorted(r["wamid"] for r in rows) == sorted(
        source.messages().values_list("wamid", flat=True)
    )
    assert len({r["conversation_id"] for r in rows}) >= 3


def test_it_shows_edits_deletions_reactions_and_media(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    rows = table(export(make_source(Scope.for_conversation(rich.conversation.pk)), tmp_path))
    found = {r["wamid"]: r for r in rows}
    typo, gone, out = found["wamid.rich-typo"], found["wamid.rich-gone"], found["wamid.rich-out"]
    assert (typo["text"], typo["original_text"]) == (
        "I will wire 10,000 tomorrow",
        "I will wire 10,000 tomorow",
    )
    assert gone["deleted_at_utc"] and gone["text"] == "Buy before the announcement"
    assert out["reactions"].startswith("🙏 by client") and out["status"] == "read"
    doc = found["wamid.rich-doc"]
    assert doc["attachment_name"] == "../../etc/passwd statement.pdf"
    assert doc["attachment_outcome"] == "stored" and len(doc["attachment_sha256"]) == 64
    assert found["wamid.rich-reply"]["reply_to_wamid"] == "wamid.rich-ar"


def test_it_writes_utf8_with_a_bom_for_excel(rich: Rich, make_source: Any, tmp_path: Path) -> None:
    data = export(make_source(Scope.for_conversation(rich.conversation.pk)), tmp_path)
    assert data.startswith("\ufeffconversation_id,channel,".encode())
    assert "ポートフォリオの見直しをお願いします".encode() in data


def test_it_writes_the_same_bytes_for_the_same_source(
    rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    assert export(source, tmp_path / "a") == export(source, tmp_path / "b")
