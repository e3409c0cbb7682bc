from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from archive import anchoring


class Command(BaseCommand):
    help = (
        "Anchor checkpoints outside the database now: timestamps, publication, cosignatures "
        "(the worker does this every minute; see docs/ANCHORING.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now", action="store_true", help="try every waiting duty now, whatever its backoff"
        )
        parser.add_argument(
            "--backfill",
            action="store_true",
            help="first plan the duties of checkpoints signed before anchoring was configured",
        )
        parser.add_argument(
            "--status", action="store_true", help="only print the work waiting, and why"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["status"]:
            self._print_backlog()
            return
        if options["backfill"]:
            planned = anchoring.backfill()
            self.stdout.write(f"planned the duties of {planned} older checkpoint(s)")
        result = anchoring.run_due(everything=options["now"], limit=10_000)
        self.stdout.write(
            f"{result.done} done, {result.failed} failed (retried later), "
            f"{result.dropped} superseded cosignature request(s) dropped"
        )
        self._print_backlog()

    def _print_backlog(self) -> None:
        waiting = anchoring.backlog()
        if not waiting:
            self.stdout.write("nothing waiting")
        for item in waiting:
            age = item.oldest_age
            since = f", the oldest for {int(age.total_seconds() // 60)} min" if age else ""
            reason = f": {item.last_error}" if item.last_error else ""
            self.stdout.write(
                f"waiting: {item.label}, {item.checkpoints} checkpoint(s){since}{reason}"
            )
