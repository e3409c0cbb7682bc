"""`manage.py storage check`: what the records and exports stores are and enforce (exit 1 when
the records store is not WORM and STORAGE_REQUIRE_WORM or --require-worm asks for it).
`manage.py storage migrate`: copy the records from the filesystem to the records store
(archive/storage_migration.py)."""

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from archive import objectstore, publication, storage_migration
from archive.anchoring import AnchorFailure
from archive.checks import worm_problem
from archive.objectstore import Description, FileStore


class Command(BaseCommand):
    help = "Check the object stores, or migrate the records from the filesystem to the bucket."
    dry_run = False

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        check = commands.add_parser("check", help="What each store is and enforces.")
        check.add_argument(
            "--require-worm",
            action="store_true",
            help="Exit 1 unless the records store is WORM (default: STORAGE_REQUIRE_WORM).",
        )
        migrate = commands.add_parser(
            "migrate", help="Copy every record file from the filesystem to the records store."
        )
        migrate.add_argument(
            "--from",
            dest="origin",
            default="",
            help="file:///path of the files (default: MEDIA_ROOT).",
        )
        migrate.add_argument(
            "--dry-run", action="store_true", help="Check and count, copy and seal nothing."
        )
        migrate.add_argument("--every", type=int, default=100, help="Progress every N files.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "check":
            self.check_stores(options["require_worm"] or settings.STORAGE_REQUIRE_WORM)
        else:
            self.migrate(options["origin"], options["dry_run"], max(options["every"], 1))

    def check_stores(self, require_worm: bool) -> None:
        self.describe("records", objectstore.records().describe())
        self.describe("exports", objectstore.exports().describe())
        if require_worm and (problem := worm_problem()):
            raise CommandError(f"WORM is required and {problem}")

    def describe(self, label: str, found: Description) -> None:
        lock = "enabled" if found.object_lock else "not enabled"
        if found.object_lock:
            lock += f", default {found.default_mode or 'none'} for {found.default_days} days"
        lines = [
            f"{label}: {found.kind} {found.where}",
            f"  reachable:   {'yes' if found.reachable else 'NO'}",
            f"  versioning:  {found.versioning or '-'}",
            f"  Object Lock: {lock}",
            f"  WORM:        {'yes' if found.worm else 'no'}",
            *(f"  problem:     {problem}" for problem in found.problems),
        ]
        self.stdout.write("\n".join(lines))

    def migrate(self, origin: str, dry_run: bool, every: int) -> None:
        source = _source(origin)
        target = objectstore.records()
        if source.describe().where == target.describe().where:
            raise CommandError(f"The records store is {source.location} already: nothing to do.")
        self.dry_run = dry_run
        mode = " (dry run: nothing is copied or sealed)" if dry_run else ""
        self.stdout.write(f"from {source.location} to {target.describe().where}{mode}")
        move = storage_migration.migrate(
            source, target, dry_run=dry_run, progress=self.progress, every=every
        )
        self.progress(move)
        for name in move.corrupt:
            self.stderr.write(f"not copied, its bytes do not match its SHA-256: {name}")
        for name in move.missing:
            self.stderr.write(f"not copied, not in {source.location}: {name}")
        if move.copied and not dry_run:
            self.stdout.write("sealed storage.migrated")
        if not dry_run:  # the copies carry no lock of their own: lock the published checkpoints
            try:
                relocked = publication.republish()
            except AnchorFailure as failure:
                raise CommandError(f"published checkpoints: {failure}") from None
            self.stdout.write(f"{relocked} published checkpoint copies in place and locked")
        if move.failed:
            raise CommandError(f"{len(move.corrupt) + len(move.missing)} files were not copied")

    def progress(self, move: storage_migration.Move) -> None:
        verb = "to copy" if self.dry_run else "copied"
        failed = len(move.corrupt) + len(move.missing)
        self.stdout.write(
            f"{move.seen} files: {len(move.copied)} {verb}, {move.present} already there "
            f"(re-read and verified), {failed} failed"
        )


def _source(origin: str) -> FileStore:
    if not origin:
        return FileStore(location=str(settings.MEDIA_ROOT))
    parts = urlsplit(origin)
    if parts.scheme != "file" or parts.netloc or not parts.path.startswith("/"):
        raise CommandError(f"--from must be file:///an/absolute/path, not {origin!r}")
    path = Path(unquote(parts.path))
    if not path.is_dir():
        raise CommandError(f"--from: {path} is not a directory")
    return FileStore(location=str(path))
