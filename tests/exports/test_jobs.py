"""Export jobs: request → seal → claim → checkpoint → files → rename → seal; cancel, retry,
failure, expiry. The format writers have their own tests; here a writer that records what it
was given stands in where the point is the job, and the real CSV writer where it is the file."""

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from archive.models import Content, LedgerEntry
from exports import formats, jobs
from exports.models import Export
from exports.scope import Scope
from exports.source import Source
from exports.target import Target
from tests.exports.conftest import Rich

State = Export.State


@pytest.fixture(autouse=True)
def export_root(settings: Any, tmp_path: Path) -> Path:
    settings.EXPORT_ROOT = tmp_path / "exports"
    return Path(settings.EXPORT_ROOT)


class Recorder:
    """A writer that writes one line per message, and can fail or be cancelled midway."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.sources = fail, []

    def __call__(self, source: Source, target: Target, prefix: str = "") -> None:
        self.sources.append(source)
        for part in source.parts():
            with target.open(f"{prefix}{part.conversation.pk}.txt") as out:
                for row in part.rows():
                    if self.fail:
                        raise RuntimeError("disk full")
                    out.write(f"{row.message.entry_id}\n".encode())


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(formats, "writer", lambda fmt: recorder)
    return recorder


def sealed(kind: str) -> list[dict[str, Any]]:
    return [json.loads(bytes(e.envelope)) for e in LedgerEntry.objects.filter(kind=kind)]


def test_it_seals_the_request_with_the_scope(rich: Rich, auditor: Any) -> None:
    scope = Scope.for_conversation(rich.conversation.pk)
    export = jobs.request_export(auditor, scope, "csv")
    (envelope,) = sealed("export.requested")
    assert envelope["export"] == str(export.pk) and envelope["user"] == auditor.pk
    content = Content.objects.get(entry_id=export.requested_seq, name="scope")
    assert json.loads(bytes(content.content)) == scope.to_json()


def test_it_refuses_an_unknown_format(rich: Rich, auditor: Any) -> None:
    with pytest.raises(ValidationError):
        jobs.request_export(auditor, Scope.for_conversation(rich.conversation.pk), "docx")


def test_it_builds_zips_renames_and_seals_the_result(
    rich: Rich, auditor: Any, recorder: Recorder, export_root: Path
) -> None:
    export = jobs.request_export(auditor, Scope.for_conversation(rich.conversation.pk), "eml")
    assert jobs.run_export(str(export.pk)) == State.DONE
    export.refresh_from_db()
    path = export_root / export.file_name
    assert path.name == "eml.zip" and not list(export_root.glob(".*"))  # no temporary left
    assert export.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    (envelope,) = sealed("export.completed")
    assert envelope["sha256"] == export.file_sha256 and envelope["checkpoint"] > 0
    assert export.progress_done == export.progress_total == export.message_count > 0
    assert recorder.sources[0].tree_size == export.checkpoint_size


def test_it_runs_once_however_often_the_task_is_delivered(
    rich: Rich, auditor: Any, recorder: Recorder
) -> None:
    export = jobs.request_export(auditor, Scope.for_conversation(rich.conversation.pk), "eml")
    jobs.run_export(str(export.pk))
    assert jobs.run_export(str(export.pk)) == "not pending"
    assert len(recorder.sources) == 1


def test_it_records_a_failure_and_retries_it(
    rich: Rich, auditor: Any, recorder: Recorder, export_root: Path
) -> None:
    recorder.fail = True
    export = jobs.request_export(auditor, Scope.for_conversation(rich.conversation.pk), "eml")
    assert jobs.run_export(str(export.pk)) == State.FAILED
    export.refresh_from_db()
    assert export.error == "RuntimeError: disk full"
    assert not any(export_root.rglob("*.zip"))
    recorder.fail = False
    assert jobs.retry(export)
    assert jobs.run_export(str(export.pk)) == State.DONE


def test_it_stops_a_cancelled_export_at_the_next_chunk(
    rich: Rich, auditor: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = jobs.request_export(auditor, Scope.for_conversation(rich.conversation.pk), "eml")
    monkeypatch.setattr("exports.jobs.source_for", _cancelling(jobs.source_for, export))
    assert jobs.run_export(str(export.pk)) == State.CANCELLED
    assert not sealed("export.completed")


def _cancelling(real: Any, export: Export) -> Any:
    def source_for(job: Export) -> Source:
        source = real(job)
        Export.objects.filter(pk=export.pk).update(cancel_requested=True)
        return source

    return source_for


def test_it_cancels_a_pending_export_at_once(rich: Rich, auditor: Any) -> None:
    export = jobs.request_export(auditor, Scope.for_conversation(rich.conversation.pk), "eml")
    assert jobs.cancel(export)
    assert jobs.run_export(str(export.pk)) == "not pending"


def test_it_expires_files_and_keeps_the_record(
    rich: Rich, auditor: Any, recorder: Recorder, export_root: Path
) -> None:
    export = jobs.request_export(auditor, Scope.for_conversation(rich.conversation.pk), "eml")
    jobs.run_export(str(export.pk))
    assert jobs.expire_exports() == 0
    assert jobs.expire_exports(timezone.now() + timedelta(days=8)) == 1
    export.refresh_from_db()
    assert export.state == State.EXPIRED and jobs.stored_name(export) is None
    assert not (export_root / str(export.pk)).exists()
