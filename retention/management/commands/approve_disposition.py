"""The second administrator's approval, for scripted two-person dispositions."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from retention import disposition
from retention.models import Disposition

from ._cli import existing_user, outcome, refused


class Command(BaseCommand):
    help = (
        "Approve a disposition waiting for a second administrator (not the one who asked for "
        "it), then run it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", type=int, metavar="ID", help="the disposition's number")
        parser.add_argument("--user", required=True, help="the approving administrator")

    def handle(self, *args: Any, **options: Any) -> None:
        user = existing_user(options["user"])
        try:
            planned = Disposition.objects.get(pk=options["id"])
        except Disposition.DoesNotExist:
            raise CommandError(f"no disposition {options['id']}") from None
        with refused():
            disposition.approve(planned, user)
        self.stdout.write(f"disposition {planned.pk} approved by {user.get_username()}")
        # No worker here, so run it now. approve() also queued it for the worker: whichever
        # claims it first runs it (run()'s conditional update); the other finds nothing to do.
        self.stdout.write(outcome(disposition.run(planned.pk)))
