"""Dispose of what is past retention, as the daily task does (or, dry, say what that would be)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from retention import disposition

from ._cli import acting_user, outcome


class Command(BaseCommand):
    help = (
        "Plan a disposition of every record past retention and under no active hold, and run it "
        "unless it needs a second administrator's approval (see approve_disposition)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="only say what is due (hold items are still refreshed)",
        )
        parser.add_argument("--user", help="the administrator to record (default: system)")

    def handle(self, *args: Any, **options: Any) -> None:
        user = acting_user(options["user"])
        if options["dry_run"]:
            for line in disposition.report().lines():
                self.stdout.write(line)
            return
        planned = disposition.plan(user)
        if planned is None:
            disposition.delete_pending_media()  # as the daily task: catch up after a crash
            self.stdout.write("nothing due")
            return
        self.stdout.write(outcome(planned))
