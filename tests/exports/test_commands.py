"""manage.py export: the same domain path as the portal, into a file or a directory."""

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from archive.models import LedgerEntry
from exports import formats
from exports.models import Export
from tests.exports.conftest import RICH_NUMBER, Rich
from tests.exports.test_jobs import Recorder


@pytest.fixture(autouse=True)
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(formats, "writer", lambda fmt: recorder)
    return recorder


def export(*args: str) -> str:
    out = StringIO()
    call_command("export", *args, stdout=out)
    return out.getvalue()


def test_it_writes_several_files_into_a_directory(rich: Rich, tmp_path: Path) -> None:
    target = tmp_path / "out"
    said = export("--participant", f"+{RICH_NUMBER}", "--format", "eml", "--output", str(target))
    assert [p.name for p in target.iterdir()] == [f"{rich.conversation.pk}.txt"]
    record = Export.objects.get()
    assert record.requested_by.username == "command-line" and not record.requested_by.is_active
    assert record.file_sha256 in said and record.file_name == ""
    assert LedgerEntry.objects.filter(kind="export.completed").count() == 1


def test_it_writes_a_bundle_to_one_file(rich: Rich, tmp_path: Path, auditor: Any) -> None:
    target = tmp_path / "evidence.zip"
    export(
        "--conversation",
        str(rich.conversation.pk),
        "--format",
        "bundle",
        "--output",
        str(target),
        "--user",
        auditor.username,
    )
    assert target.read_bytes()[:2] == b"PK"
    assert Export.objects.get().requested_by == auditor


def test_it_takes_a_search_with_filters(rich: Rich, tmp_path: Path) -> None:
    export(
        "--query",
        "q=statement&direction=out",
        "--format",
        "eml",
        "--output",
        str(tmp_path / "found"),
    )
    assert Export.objects.get().scope["query"] == {"direction": "out", "q": "statement"}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--conversation", "999999"], "no such conversation"),
        (["--participant", "12"], "full WhatsApp number"),
        (["--query", "date_from=2026-02-02&date_to=2026-01-01"], "before the start"),
    ],
)
def test_it_names_what_is_wrong(rich: Rich, tmp_path: Path, args: list[str], problem: str) -> None:
    with pytest.raises(CommandError, match=problem):
        export(*args, "--format", "csv", "--output", str(tmp_path / "x.csv"))
    assert not Export.objects.exists()


def test_it_never_overwrites_a_file(rich: Rich, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("keep me")
    with pytest.raises(CommandError, match="exists"):
        export("--participant", RICH_NUMBER, "--format", "csv", "--output", str(tmp_path / "x.csv"))
    assert (tmp_path / "x.csv").read_text() == "keep me"
