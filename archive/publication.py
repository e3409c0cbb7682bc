"""Checkpoints published outside the database, and the check that the database still agrees.

A signed checkpoint (its note) and its newest RFC 3161 token are written, as duties of
archive/anchoring.py, to

- the records store under `ledger/checkpoints/<tree size, 20 digits>.note` (and `.tst`): in
  production a bucket with Object Lock in COMPLIANCE mode, where each is locked for
  RETAIN_DAYS, so that nobody, whoever they are, can delete or change it before the records
  it proves are gone;
- CHECKPOINT_DIR, when set, under the same file names (e.g. a mount another party keeps):
  written to a temporary file, synced, then linked into place, never replacing a file.

Writing is idempotent: the same bytes already there are success; different bytes are a failure
naming the place. Each place written is recorded as a `Publication` row with the SHA-256.

`verify_archive --against-published` reads every published copy back (`read_published`): its
notes are checked like the database's checkpoints by the tree walk, then `compare` finds copies
missing, copies the database no longer has, copies that differ from the database's, and
checks an RFC 6962 consistency proof from each published tree to the current one.
"""

import contextlib
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.storage import Storage
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from archive import checkpoints as cp
from archive import objectstore, signing
from archive.anchoring import AnchorFailure
from archive.chain_check import Problem
from archive.merkle import ProofError, verify_consistency
from archive.models import Checkpoint, CheckpointTimestamp, Publication
from archive.proofs import ProofUnavailable, ledger_consistency_proof

PREFIX = "ledger/checkpoints/"  # in the records store
SUFFIXES = {Publication.Artifact.NOTE: ".note", Publication.Artifact.TIMESTAMP: ".tst"}
NAME = re.compile(r"(\d{20})\.(note|tst)")
# A published checkpoint must outlive every record it proves. The longest retention a policy
# may set is 100 years (retention/models.py MAX_DAYS; a test keeps the two equal), counted from
# a record's sealing, which precedes its checkpoint's publication: locking each published copy
# for that long from its publication covers every record under it.
RETAIN_DAYS = 36_525
TARGET_NAMES: dict[str, str] = {
    Publication.Target.RECORDS: "the records store",
    Publication.Target.DIRECTORY: "CHECKPOINT_DIR",
}
STORE_ERRORS = (objectstore.StoreError, OSError, BotoCoreError, ClientError)


def file_name(tree_size: int, artifact: str) -> str:
    return f"{tree_size:020d}{SUFFIXES[Publication.Artifact(artifact)]}"


# --- publishing ---------------------------------------------------------------------------


def publish(checkpoint: Checkpoint, artifact: str) -> None:
    """Write the checkpoint's note ("note") or newest token ("timestamp") to the records store
    and CHECKPOINT_DIR; AnchorFailure (retried by the runner) when a place refuses."""
    data = _artifact_bytes(checkpoint, artifact)
    name = file_name(checkpoint.tree_size, artifact)
    places = [(Publication.Target.RECORDS, _to_records(PREFIX + name, data))]
    if settings.CHECKPOINT_DIR:
        places.append((Publication.Target.DIRECTORY, _to_directory(name, data)))
    digest = hashlib.sha256(data).hexdigest()
    for target, location in places:
        row = {"checkpoint": checkpoint, "artifact": artifact, "target": target}
        if not Publication.objects.filter(**row, location=location).exists():
            Publication.objects.create(
                **row, location=location, sha256=digest, published_at=timezone.now()
            )


def stored_files() -> Iterator[tuple[str, str]]:
    """The published copies in the records store, as (name, SHA-256), for `storage migrate`
    (archive/storage_migration.py) to carry them to a new store with the records."""
    rows = Publication.objects.filter(target=Publication.Target.RECORDS)
    yield from rows.values_list("location", "sha256").distinct().order_by("location")


def republish() -> int:
    """Publish every published checkpoint again, e.g. after `storage migrate` (which copies
    without locking): copies the records store lacks are written, the others locked again for
    RETAIN_DAYS. Different bytes in place raise AnchorFailure naming them. Returns how many."""
    done = 0
    published = Publication.objects.values_list("checkpoint_id", "artifact").distinct()
    for size, artifact in published.order_by("checkpoint_id", "artifact"):
        publish(Checkpoint.objects.get(tree_size=size), artifact)
        done += 1
    return done


def _artifact_bytes(checkpoint: Checkpoint, artifact: str) -> bytes:
    if artifact == Publication.Artifact.NOTE:
        return checkpoint.note.encode()
    token = checkpoint.timestamps.order_by("-received_at").first()
    if token is None:
        raise AnchorFailure(f"checkpoint {checkpoint.tree_size} has no timestamp token yet")
    return bytes(token.token)


def _to_records(key: str, data: bytes) -> str:
    """Store (or find) the bytes under `key` and lock them for RETAIN_DAYS."""
    store = objectstore.records()
    try:
        if store.exists(key):
            _same(b"".join(store.stream(key)), data, f"the records store's {key}")
        else:
            store.save_stream(key, io.BytesIO(data))
        # Only ever lengthens: each retry asks for a later date than the last.
        store.retain(key, timezone.now() + timedelta(days=RETAIN_DAYS))
    except STORE_ERRORS as error:
        raise AnchorFailure(f"records store: {error}") from error
    return key


def _to_directory(name: str, data: bytes) -> str:
    directory = Path(settings.CHECKPOINT_DIR)
    path = directory / name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _write_new(path, data)
        _same(path.read_bytes(), data, str(path))
    except OSError as error:
        reason = error.strerror or str(error)
        raise AnchorFailure(f"CHECKPOINT_DIR: {path} cannot be written ({reason})") from error
    return str(path)


def _write_new(path: Path, data: bytes) -> None:
    """A temporary file, synced, read-only, then hard-linked into place: a reader never sees
    half a file, and an existing file (another writer's) is never replaced."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        Path(temporary).chmod(0o444)
        with contextlib.suppress(FileExistsError):  # the caller compares what is there
            path.hardlink_to(temporary)
    finally:
        Path(temporary).unlink()
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the new name survives a crash
    finally:
        os.close(directory)


def _same(found: bytes, data: bytes, where: str) -> None:
    if found != data:
        raise AnchorFailure(f"{where} already holds different bytes; it was not replaced")


# --- reading back and comparing -----------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """One published file as read back."""

    target: str  # Publication.Target
    location: str
    tree_size: int
    artifact: str  # Publication.Artifact
    data: bytes


@dataclass
class Published:
    """Every published copy found, and the notes among them for the tree walk."""

    copies: list[Copy] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: set[str] = field(default_factory=set)  # the places that could be read


def read_published(report: Any) -> Published:
    """Read every published note and token from the records store and CHECKPOINT_DIR; a place
    or file that cannot be read, or a malformed one, is a problem in `report`."""
    published = Published()
    places = [(Publication.Target.RECORDS, _records_copies)]
    if settings.CHECKPOINT_DIR:
        places.append((Publication.Target.DIRECTORY, _directory_copies))
    for target, reader in places:
        try:
            for name, location, data in reader():
                _add_copy(report, published, target, name, location, data)
        except STORE_ERRORS as error:
            where = TARGET_NAMES[target]
            report.add(Problem(f"the published checkpoints in {where} cannot be read: {error}"))
            continue
        published.targets.add(target)
    return published


def _records_copies() -> Iterator[tuple[str, str, bytes]]:
    store = objectstore.records()
    try:
        _dirs, names = cast(Storage, store).listdir(PREFIX)
    except FileNotFoundError:  # the filesystem store before the first publication
        return
    for name in sorted(names):
        yield name, PREFIX + name, b"".join(store.stream(PREFIX + name))


def _directory_copies() -> Iterator[tuple[str, str, bytes]]:
    directory = Path(settings.CHECKPOINT_DIR)
    if not directory.exists():
        return
    for path in sorted(directory.iterdir()):
        if not path.name.startswith("."):  # a temporary file a crash left behind
            yield path.name, str(path), path.read_bytes()


def _add_copy(
    report: Any, published: Published, target: str, name: str, location: str, data: bytes
) -> None:
    match = NAME.fullmatch(name)
    if match is None:
        report.add(Problem(f"{location} in {TARGET_NAMES[target]} is not a published checkpoint"))
        return
    size = int(match[1])
    artifact = Publication.Artifact.NOTE if match[2] == "note" else Publication.Artifact.TIMESTAMP
    if artifact == Publication.Artifact.NOTE:
        try:
            note = data.decode()
        except UnicodeDecodeError:
            report.add(Problem(f"the published note {location} is not text", checkpoint=size))
            return
        if note not in published.notes:
            published.notes.append(note)
    published.copies.append(Copy(target, location, size, artifact, data))


def compare(
    report: Any,
    stored: list[Any],
    published: Published,
    roots: dict[int, bytes],
    *,
    using: str = DEFAULT_DB_ALIAS,
) -> None:
    """The database's checkpoints and the published ones agree (see the module docstring);
    each stored checkpoint's summary goes to report.anchors[size]["published"]."""
    notes = {row.tree_size: row.note.encode() for row in stored}
    tokens: dict[int, set[bytes]] = {}
    for size, token in CheckpointTimestamp.objects.using(using).values_list(
        "checkpoint_id", "token"
    ):
        tokens.setdefault(size, set()).add(bytes(token))
    rows = list(Publication.objects.using(using).order_by("checkpoint_id", "artifact", "target"))
    for copy in published.copies:
        _check_copy(report, copy, notes, tokens)
    _check_rows(report, rows, published)
    _check_consistency(report, published, roots, using)
    for size in notes:
        places: dict[str, list[str]] = {}
        for row in rows:
            if row.checkpoint_id == size:
                places.setdefault(row.artifact, []).append(row.target)
        summary = "; ".join(f"{kind}: {', '.join(where)}" for kind, where in places.items())
        report.anchors.setdefault(size, {})["published"] = summary or "not published"


def _check_copy(
    report: Any, copy: Copy, notes: dict[int, bytes], tokens: dict[int, set[bytes]]
) -> None:
    where = f"{TARGET_NAMES[copy.target]} ({copy.location})"
    if copy.tree_size not in notes:
        report.add(
            Problem(
                f"the published {_kind(copy)} in {where} is not in the database",
                checkpoint=copy.tree_size,
            )
        )
    elif copy.artifact == Publication.Artifact.NOTE and copy.data != notes[copy.tree_size]:
        report.add(
            Problem(
                f"the published note in {where} differs from the database's",
                checkpoint=copy.tree_size,
            )
        )
    elif copy.artifact == Publication.Artifact.TIMESTAMP and copy.data not in tokens.get(
        copy.tree_size, set()
    ):
        report.add(
            Problem(
                f"the published timestamp token in {where} differs from the database's",
                checkpoint=copy.tree_size,
            )
        )


def _kind(copy: Copy) -> str:
    return "checkpoint" if copy.artifact == Publication.Artifact.NOTE else "timestamp token"


def _check_rows(report: Any, rows: list[Publication], published: Published) -> None:
    """Every place the database says it published to still holds those bytes."""
    found = {(c.target, c.artifact, c.tree_size): c for c in published.copies}
    unchecked: set[int] = set()  # checkpoints published to a CHECKPOINT_DIR not set here
    for row in rows:
        if row.target not in published.targets:  # unreadable (reported) or not configured
            if row.target == Publication.Target.DIRECTORY:
                unchecked.add(row.checkpoint_id)
            continue
        copy = found.get((row.target, row.artifact, row.checkpoint_id))
        what = "note" if row.artifact == Publication.Artifact.NOTE else "timestamp token"
        where = f"{TARGET_NAMES[row.target]} ({row.location})"
        if copy is None:
            report.add(
                Problem(
                    f"its published {what} is missing from {where}", checkpoint=row.checkpoint_id
                )
            )
        elif hashlib.sha256(copy.data).hexdigest() != row.sha256:
            report.add(
                Problem(
                    f"its published {what} in {where} is not the one published",
                    checkpoint=row.checkpoint_id,
                )
            )
    if unchecked and not settings.CHECKPOINT_DIR:
        report.add(
            Problem(
                f"{len(unchecked)} checkpoints were published to a CHECKPOINT_DIR, which is not"
                " set here: set it to check them"
            )
        )


def _check_consistency(
    report: Any, published: Published, roots: dict[int, bytes], using: str
) -> None:
    """An RFC 6962 consistency proof, built from the database's stored nodes, from each
    published tree to the current one, checked against the published root and the root
    recomputed from the entries."""
    current = max((size for size in roots if size <= report.entries), default=0)
    if current == 0:
        return
    verifiers = cp.verifiers()
    for note in published.notes:
        try:
            _origin, size, root = cp.parse_checkpoint_body(signing.open_note(note, verifiers))
        except (signing.NoteError, ValueError):
            continue  # the tree walk reported it
        if size > current or size == 0:
            continue  # beyond the ledger: the tree walk reported it
        try:
            proof = ledger_consistency_proof(size, current, using=using)
            verify_consistency(size, current, root, roots[current], proof)
        except (ProofUnavailable, ProofError) as error:
            report.add(
                Problem(
                    f"the published checkpoint is not consistent with the ledger's tree of"
                    f" {current} entries: {error}",
                    checkpoint=size,
                )
            )
