"""Moving the records store's files from a filesystem to the configured records store (a
bucket), for `manage.py storage migrate`: each file's bytes checked against the SHA-256
recorded for them before they are copied, the move sealed as one `storage.migrated` entry.

The apps that keep files in the records store say which in their AppConfig.ready(), as
`register(source)`: archive cannot name their models (docs/ARCHITECTURE.md, the floors).

Resumable and idempotent: a file already in the target is re-read and checked against its
SHA-256 (not only looked up), so a second run copies nothing and proves every copy readable and
intact; a copy that does not match is written again (a new version; the old one stays locked).
"""

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from archive import ledger
from archive.envelope import Fact
from archive.objectstore import Corrupt, Store

logger = logging.getLogger(__name__)
RecordFiles = Callable[[], Iterable[tuple[str, str]]]  # → (store name, sha256) of each file
_sources: list[RecordFiles] = []


def register(source: RecordFiles) -> None:
    """AppConfig.ready(): an app's files in the records store (messaging's media files)."""
    if source not in _sources:  # ready() run twice registers once
        _sources.append(source)


def record_files() -> Iterator[tuple[str, str]]:
    for source in _sources:
        yield from source()


@dataclass
class Move:
    """What a run did (or, with dry_run, would do)."""

    copied: list[str] = field(default_factory=list)  # names written to the target
    present: int = 0  # already in the target with the right bytes
    corrupt: list[str] = field(default_factory=list)  # source bytes differ from their SHA-256
    missing: list[str] = field(default_factory=list)  # not in the source at all
    seen: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.corrupt or self.missing)


def migrate(
    source: Store,
    target: Store,
    *,
    dry_run: bool = False,
    progress: Callable[[Move], None] | None = None,
    every: int = 100,
) -> Move:
    """Copy every registered file from `source` to `target`, checking each; a file that fails
    is reported and skipped, the rest continue. With something copied, seal `storage.migrated`
    (counts, from, to; the names copied committed as `names`). An unreachable target raises
    StoreError: nothing after it is tried, and the next run resumes."""
    move = Move()
    for name, sha256 in record_files():
        _move_one(source, target, name, sha256, move, dry_run)
        move.seen += 1
        if progress is not None and move.seen % every == 0:
            progress(move)
    if move.copied and not dry_run:
        ledger.append([_fact(source, target, move)])
    return move


def _move_one(
    source: Store, target: Store, name: str, sha256: str, move: Move, dry_run: bool
) -> None:
    if target.exists(name):
        try:
            target.open_verified(name, sha256).close()
            move.present += 1
            return
        except Corrupt:
            logger.error("storage migrate: %s in the target does not match; copying again", name)
    try:
        copy = source.open_verified(name, sha256)
    except FileNotFoundError:
        logger.error("storage migrate: %s is not in the source", name)
        move.missing.append(name)
        return
    except Corrupt:
        logger.error("storage migrate: %s does not match its recorded SHA-256; skipped", name)
        move.corrupt.append(name)
        return
    with copy:
        if not dry_run:
            target.save_stream(name, copy)
    move.copied.append(name)


def _fact(source: Store, target: Store, move: Move) -> Fact:
    return Fact(
        "storage.migrated",
        {
            "copied": len(move.copied),
            "present": move.present,
            "corrupt": len(move.corrupt),
            "missing": len(move.missing),
            "from": source.describe().where,
            "to": target.describe().where,
        },
        {"names": "\n".join(sorted(move.copied)).encode()},
    )
