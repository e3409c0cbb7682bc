"""The import of a phone "Export chat" file: the one domain path the portal, the command and the
tasks share (docs/IMPORTS.md).

`upload()` stores the file byte for byte and seals it before anything reads it; `analyse()` parses
it once without sealing anything and builds the preview (refusing bad input here, so that nothing
but the upload is ever sealed for it); `confirm()` records the user's choices (date order, authors,
conversation) and seals `import.started`; `run_import()` seals the entries batch by batch, each
batch one transaction that also moves the job's cursor, so a run that dies resumes where the last
committed batch ended and every entry is sealed exactly once.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.contrib.auth.models import AbstractBaseUser

from messaging.models import Channel

from .models import ImportJob

BATCH = 2000  # entries per transaction


class ImportRefused(Exception):
    """An upload ClientWindow will not take (over the size cap, an unknown time zone): raised
    before anything is stored."""


@dataclass
class Preview:
    """What the user confirms: the detected format, the counts, the first and last entries, the
    authors and every warning (also what `import_chat --dry-run` prints)."""

    file_name: str
    detected: dict[str, Any]
    date_order: str | None
    date_order_evidence: str
    entries: int = 0
    lines: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    first: list[dict[str, Any]] = field(default_factory=list)
    last: list[dict[str, Any]] = field(default_factory=list)
    authors: list[dict[str, Any]] = field(default_factory=list)
    chat_name: str = ""
    one_to_one: bool = False
    warnings: int = 0
    problems: list[tuple[int | None, str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError


def upload(
    *,
    channel: Channel,
    custodian: str,
    time_zone: str,
    file_name: str,
    stream: IO[bytes],
    uploaded_by: AbstractBaseUser | None,
    inline: bool = False,
) -> ImportJob:
    """Store the upload (streamed to a temporary file under CHAT_IMPORT_MAX_BYTES, hashed as it
    streams) as a MediaFile and seal it (`media.file`, then `chat.export`) before parsing; the
    job starts in `analysing`, and `analyse()` is queued after the commit (run here if inline).
    Raises ImportRefused for an upload over the cap or an unknown time zone."""
    raise NotImplementedError


def analyse(job_id: int) -> ImportJob:
    """Read the stored upload back, detect and parse it in full without sealing anything:
    preview, problems, authors, attachments. Ends in refused (the parser's ExportError, with
    the line), needs_date_order, or ready."""
    raise NotImplementedError


def preview_file(
    path: str | Path, file_name: str, *, time_zone: str, date_order: str | None = None
) -> Preview:
    """The preview of a local file, storing nothing (`import_chat --dry-run`)."""
    raise NotImplementedError


def confirm(
    job: ImportJob,
    *,
    date_order: str,
    mapping: dict[str, dict[str, Any]],
    chat_name: str,
    one_to_one: bool,
    user: AbstractBaseUser | None,
    queue: bool = True,
) -> ImportJob:
    """Record the user's choices and seal `import.started`; the job is queued for run_import.

    mapping: {author: {"as": "custodian"} | {"as": "participant", "id": int}
              | {"as": "number", "number": "+44…"} | {"as": "unknown"}}"""
    raise NotImplementedError


def run_import(job_id: int) -> ImportJob:
    """Claim the job and seal its entries in batches of BATCH, each one transaction (ledger facts,
    rows, summaries, retention, the cursor); resume from the cursor after a crash; stop at a
    batch boundary when cancelled; seal `import.finished` at the end."""
    raise NotImplementedError


def cancel(job: ImportJob, user: AbstractBaseUser | None) -> ImportJob:
    """Stop a job: one not yet running is cancelled at once, a running one at its next batch
    boundary (what was sealed stays sealed: the ledger is append-only)."""
    raise NotImplementedError


def report_rows(job: ImportJob) -> Iterator[tuple[int | None, str, str]]:
    """The report's rows (line, kind, problem), in line order: the CSV download."""
    raise NotImplementedError


def resume_stalled() -> int:
    """Queue run_import again for the jobs left queued or running by a worker that died; returns
    how many were queued."""
    raise NotImplementedError
