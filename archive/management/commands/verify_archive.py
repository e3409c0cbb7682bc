import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from archive.verify import record_run, verify_ledger


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
            "--no-record", action="store_true", help="do not record the result in the archive"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            notes = [path.read_text() for path in options["against"]]
        except OSError as exc:
            raise CommandError(f"cannot read a saved checkpoint: {exc}") from None
        report = verify_ledger(contents=not options["skip_contents"], saved_notes=notes)
        if not options["no_record"]:
            record_run(report, trigger="command")
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        elif report.intact:
            self.stdout.write(
                f"intact: {report.entries} entries, {report.checkpoints} checkpoints, "
                f"{report.contents} contents checked in {report.seconds:.2f}s"
            )
        else:
            self.stderr.write(f"BROKEN: {report.first_problem}")
            for problem in report.problems:
                self.stderr.write(f"  {problem}")
        if not report.intact:
            raise SystemExit(1)
