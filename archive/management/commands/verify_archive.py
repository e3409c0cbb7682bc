"""verify_archive: re-check the whole archive (archive/verify.py), optionally against the
checkpoints published outside the database, and say what anchors each checkpoint; or, with
--incremental, only what was added since the last verified checkpoint."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from archive.models import Checkpoint, CheckpointTimestamp, Cosignature, Publication
from archive.verify import NotVerified, Report, record_run, verify_ledger

ANCHORS = ("timestamp", "published", "cosignatures")


class Command(BaseCommand):
    help = "Verify the whole archive. Exit 0 when intact; 1 naming the first bad seq otherwise."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--skip-contents", action="store_true", help="do not re-check content commitments"
        )
        parser.add_argument(
            "--against",
            action="append",
            default=[],
            type=Path,
            metavar="NOTE_FILE",
            help="also check a checkpoint note saved outside the database (repeatable)",
        )
        parser.add_argument(
            "--against-published",
            action="store_true",
            help="also check the checkpoints published to the records store and CHECKPOINT_DIR",
        )
        parser.add_argument(
            "--checkpoints",
            action="store_true",
            help="list each checkpoint with its timestamp, publications and cosignatures",
        )
        parser.add_argument(
            "--no-record", action="store_true", help="do not record the result in the archive"
        )
        parser.add_argument(
            "--incremental",
            action="store_true",
            help="check only the entries and checkpoints after the last verified checkpoint "
            "(the full run, the default, is the audit)",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="processes checking entries in parallel (default: one per CPU on large ledgers)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            notes = [path.read_text() for path in options["against"]]
        except OSError as exc:
            raise CommandError(f"cannot read a saved checkpoint: {exc}") from None
        if options["workers"] is not None and options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        full_only = notes or options["against_published"] or options["skip_contents"]
        if options["incremental"] and full_only:
            raise CommandError("--against, --against-published and --skip-contents need a full run")
        try:
            report = verify_ledger(
                contents=not options["skip_contents"],
                saved_notes=notes,
                against_published=options["against_published"],
                workers=options["workers"],
                incremental=options["incremental"],
            )
        except NotVerified as exc:
            raise CommandError(str(exc)) from None
        if not options["no_record"]:
            record_run(report, trigger="command")
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self._write_text(report, checkpoints=options["checkpoints"])
        if not report.intact:
            raise SystemExit(1)

    def _write_text(self, report: Report, *, checkpoints: bool) -> None:
        if report.intact:
            entries = f"{report.entries} entries"
            if report.mode == "incremental":
                entries = f"{report.entries} new entries (from seq {report.from_seq})"
            self.stdout.write(
                f"intact: {entries}, {report.checkpoints} checkpoints, "
                f"{report.contents} contents checked in {report.seconds:.2f}s"
                f" ({report.workers} process{'es' if report.workers > 1 else ''})"
            )
        else:
            self.stderr.write(f"BROKEN: {report.first_problem}")
            for problem in report.problems:
                self.stderr.write(f"  {problem}")
        if checkpoints:
            times = dict(Checkpoint.objects.values_list("tree_size", "created_at"))
            for size, found in sorted(report.anchors.items()):
                when = f"{times[size]:%Y-%m-%d %H:%M:%S}Z" if size in times else "-"
                parts = [f"{kind} {found.get(kind) or '-'}" for kind in ANCHORS]
                self.stdout.write(f"checkpoint {size}  {when}  " + "  ".join(parts))
        self.stdout.write(anchoring_summary())


def anchoring_summary() -> str:
    """How many checkpoints the database says are anchored outside it, by kind."""

    def anchored(model: Any) -> int:
        return int(model.objects.values("checkpoint").distinct().count())

    return (
        f"anchoring: {Checkpoint.objects.count()} checkpoints; "
        f"{anchored(CheckpointTimestamp)} timestamped, "
        f"{anchored(Publication)} published, {anchored(Cosignature)} cosigned"
    )
