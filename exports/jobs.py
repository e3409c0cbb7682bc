"""Export jobs: the one domain path the portal, the API and `manage.py export` share.

`request_export()` records the request and seals it in the ledger, then queues the django-q2 task;
`run_export()` claims a pending export, signs a checkpoint so that everything sealed before the
request is provable, writes the file in a temporary directory on the worker's own disk, hashes
it, uploads it to the exports store (archive/objectstore.py: EXPORT_ROOT or a bucket, which every
web node reads) and seals the result (the file's SHA-256). `build()` is the part the CLI calls
directly, into a local directory. Cancelling is cooperative: the writers read in chunks, and each
chunk checks the flag.
"""

import hashlib
import json
import logging
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.storage import FileSystemStorage
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_q.tasks import async_task

from archive import anchoring, ledger, objectstore
from archive.checkpoints import create_checkpoint
from archive.envelope import Fact
from archive.models import AnchorTask, Checkpoint
from archive.objectstore import StoreError

from . import formats
from .bundle import zip_stream
from .models import Export
from .scope import Scope
from .source import Cancelled, Source
from .target import DirectoryTarget

logger = logging.getLogger(__name__)
State = Export.State


class UploadFailed(Exception):
    """The exports store could not take a finished file: unreachable or refusing (a retry,
    which builds the export again, may succeed)."""


def request_export(user: AbstractBaseUser, scope: Scope, fmt: str, *, queue: bool = True) -> Export:
    """Record and seal the request, then queue the job (after the transaction commits); the CLI
    passes queue=False and runs it itself."""
    if fmt not in formats.FORMATS:
        raise ValidationError(f"Unknown export format {fmt!r}.")
    with transaction.atomic():
        export = Export.objects.create(
            requested_by_id=user.pk,
            format=fmt,
            scope_kind=scope.kind,
            scope=scope.to_json(),
            scope_label=scope.label(),
        )
        (entry,) = ledger.append(
            [
                Fact(
                    "export.requested",
                    {"export": str(export.pk), "format": fmt, "scope": scope.kind, "user": user.pk},
                    {
                        "scope": _canonical(scope.to_json()),
                        "username": user.get_username().encode(),
                    },
                )
            ]
        )
        export.requested_seq = entry.seq
        export.save(update_fields=["requested_seq"])
        if queue:
            transaction.on_commit(lambda: _enqueue(export))
    return export


def _enqueue(export: Export) -> None:
    async_task("exports.tasks.run_export", str(export.pk), task_name=f"export {export.pk}")


def run_export(pk: str, output: Path | None = None) -> str:
    """Claim a pending export and build it (into the exports store, or at `output` for the CLI);
    a second run of the same task does nothing."""
    claimed = Export.objects.filter(pk=pk, state=State.PENDING).update(
        state=State.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1, error=""
    )
    if not claimed:
        return "not pending"
    export = Export.objects.select_related("requested_by").get(pk=pk)
    try:
        _produce(export, output)
    except Cancelled:
        _finish(export, State.CANCELLED, error="Cancelled by the requester.")
    except UploadFailed as problem:
        logger.error("export %s: %s", pk, problem)  # ids and the bucket's answer only
        _finish(export, State.FAILED, error=str(problem)[:2000])
    except Exception as problem:  # the job must always end in a state a person can read
        logger.exception("export %s failed", pk)  # no message content: ids and the trace only
        _finish(export, State.FAILED, error=f"{type(problem).__name__}: {problem}"[:2000])
    return Export.objects.values_list("state", flat=True).get(pk=pk)


def _produce(export: Export, output: Path | None) -> None:
    name = formats.single_file(export.format) or f"{export.format}.zip"
    if output is None:
        digest, size = _build_and_upload(export, name)
        stored = {"file_name": f"{export.pk}/{name}"}
    else:
        digest, size = _build_into(export, output, name)
        stored = {}
    with transaction.atomic():
        (entry,) = ledger.append(
            [
                Fact(
                    "export.completed",
                    {
                        "export": str(export.pk),
                        "format": export.format,
                        "checkpoint": export.checkpoint_size,
                        "messages": export.message_count,
                        "size": size,
                        "sha256": digest,
                    },
                )
            ]
        )
        _finish(
            export,
            State.DONE,
            file_size=size,
            file_sha256=digest,
            completed_seq=entry.seq,
            expires_at=timezone.now() + timedelta(days=settings.EXPORT_EXPIRY_DAYS),
            **stored,
        )


def _build_and_upload(export: Export, name: str) -> tuple[str, int]:
    """Build on this worker's disk (TMPDIR: it needs room for the largest export), hash, and
    upload to the exports store as `<pk>/<name>`; nothing local outlives the call."""
    with tempfile.TemporaryDirectory(prefix=f"clientwindow-export-{export.pk}-") as work:
        produced = build(export, Path(work), archive_name=name)
        digest, size = _digest(produced)
        with produced.open("rb") as handle:
            try:
                objectstore.exports().save_stream(f"{export.pk}/{name}", handle)
            except StoreError as problem:
                raise UploadFailed(
                    f"The exports store could not take the finished file ({problem}); "
                    "retry the export once the store is reachable."
                ) from problem
    return digest, size


def _build_into(export: Export, output: Path, name: str) -> tuple[str, int]:
    """The CLI's --output: a file, or a directory for formats that yield several files; built
    beside it under a temporary name, then renamed (a reader never sees half a file)."""
    several = formats.single_file(export.format) is None and export.format != "bundle"
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{export.pk}-", dir=output.parent))
    try:
        build(export, work, archive_name=None if several else name).replace(output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _digest(output)


def build(export: Export, directory: Path, *, archive_name: str | None = None) -> Path:
    """Write the export into `directory`: its one file, or for formats that yield several a ZIP
    named `archive_name` (with None, the files themselves: the CLI's --output directory)."""
    source = source_for(export)
    Export.objects.filter(pk=export.pk).update(
        checkpoint_size=export.checkpoint_size,
        message_count=export.message_count,
        progress_total=export.progress_total,
        progress_done=0,
    )
    write = formats.writer(export.format)
    single = formats.single_file(export.format)
    if single is not None or archive_name is None:
        write(source, DirectoryTarget(directory), "")
        return directory / single if single else directory
    path = directory / archive_name
    with zip_stream(path) as target:  # nothing held per file: a million EMLs fit in any memory
        write(source, target, "")
    return path


def source_for(export: Export) -> Source:
    """The export's Source: signed against a checkpoint that covers everything sealed so far."""
    create_checkpoint()
    checkpoint = Checkpoint.objects.order_by("-tree_size").first()
    if checkpoint is None:
        raise ValidationError("The archive is empty: there is nothing to export.")
    if export.format == "bundle":
        # The bundle carries the checkpoint's RFC 3161 token if a TSA answers now (each within
        # TSA_TIMEOUT); without one it is made all the same, and the worker keeps asking.
        # Timestamps follow tree order, so older checkpoints still waiting go first.
        anchoring.run_due(everything=True, duties=[AnchorTask.Duty.TIMESTAMP])
    scope = Scope.from_json(export.scope)
    source = Source(
        export_id=str(export.pk),
        created_at=export.started_at or timezone.now(),
        requester=export.requested_by.get_username(),
        scope=scope,
        checkpoint=checkpoint,
        on_rows=lambda n: _advance(export, n),
    )
    export.checkpoint_size = checkpoint.tree_size
    export.message_count = source.count()
    export.progress_total = export.message_count * formats.passes(export.format)
    return source


def _advance(export: Export, rows: int) -> None:
    """Progress after each chunk; a cancelled export stops here."""
    Export.objects.filter(pk=export.pk).update(progress_done=F("progress_done") + rows)
    if Export.objects.filter(pk=export.pk, cancel_requested=True).exists():
        raise Cancelled


def _finish(export: Export, state: str, **fields: Any) -> None:
    fields |= {"state": state, "finished_at": timezone.now()}
    Export.objects.filter(pk=export.pk).update(**fields)
    for name, value in fields.items():
        setattr(export, name, value)


def cancel(export: Export) -> bool:
    """Ask a pending or running export to stop; a pending one stops at once."""
    if Export.objects.filter(pk=export.pk, state=State.PENDING).update(
        state=State.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    ):
        return True
    return bool(
        Export.objects.filter(pk=export.pk, state=State.RUNNING).update(cancel_requested=True)
    )


def retry(export: Export) -> bool:
    """Run a failed or cancelled export again, as the same export."""
    again = Export.objects.filter(pk=export.pk, state__in=(State.FAILED, State.CANCELLED)).update(
        state=State.PENDING,
        cancel_requested=False,
        progress_done=0,
        error="",
        started_at=None,
        finished_at=None,
    )
    if again:
        transaction.on_commit(lambda: _enqueue(export))
    return bool(again)


def record_download(user: AbstractBaseUser, export: Export) -> None:
    """Seal who downloaded which export (the access log records it too, with the address)."""
    ledger.append(
        [
            Fact(
                "export.downloaded",
                {"export": str(export.pk), "user": user.pk, "sha256": export.file_sha256},
                {"username": user.get_username().encode()},
            )
        ]
    )


def stored_name(export: Export) -> str | None:
    """The export's file in the exports store, while it is there to download."""
    if export.state != State.DONE or not export.file_name:
        return None
    return export.file_name


def expire_exports(now: datetime | None = None) -> int:
    """Remove the files of exports past their expiry; the records stay (state EXPIRED). An
    export whose file the store cannot delete now stays DONE, for the next daily run."""
    now = now or timezone.now()
    expired = 0
    for export in Export.objects.filter(state=State.DONE, expires_at__lte=now):
        try:
            _remove(export)
        except StoreError as problem:
            logger.error("export %s: its file could not be removed: %s", export.pk, problem)
            continue
        expired += Export.objects.filter(pk=export.pk, state=State.DONE).update(state=State.EXPIRED)
    return expired


def _remove(export: Export) -> None:
    store = objectstore.exports()
    if export.file_name:
        store.destroy(export.file_name)  # every version, should the bucket keep versions
    if isinstance(store, FileSystemStorage):  # and the export's folder, on a disk
        shutil.rmtree(store.path(str(export.pk)), ignore_errors=True)


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file; for a directory (the CLI's EML or RSMF output), of its
    listing in `sha256sum` form, so that one digest still names the whole result."""
    if path.is_dir():
        lines = "".join(
            f"{_file_sha256(f)}  {f.relative_to(path).as_posix()}\n"
            for f in sorted(path.rglob("*"))
            if f.is_file()
        ).encode()
        return hashlib.sha256(lines).hexdigest(), sum(
            f.stat().st_size for f in path.rglob("*") if f.is_file()
        )
    return _file_sha256(path), path.stat().st_size


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
