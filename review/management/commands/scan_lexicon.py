"""Run lexicon policies over messages sent in a date range (the on-demand scan)."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from review.lexicon import scan_range
from review.models import LexiconPolicy


class Command(BaseCommand):
    help = "Scan messages sent from --from to --to (both included) with lexicon policies."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD")
        parser.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD")
        parser.add_argument("--policy", action="append", default=[], help="a policy name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            start, end = date.fromisoformat(options["start"]), date.fromisoformat(options["end"])
        except ValueError as error:
            raise CommandError(f"dates are YYYY-MM-DD: {error}") from error
        if start > end:
            raise CommandError("--to is before --from")
        policies = LexiconPolicy.objects.filter(active=True)
        if options["policy"]:
            policies = LexiconPolicy.objects.filter(name__in=options["policy"])
            missing = set(options["policy"]) - set(policies.values_list("name", flat=True))
            if missing:
                raise CommandError(f"no such policy: {', '.join(sorted(missing))}")
        matched = scan_range(start, end, policies)
        self.stdout.write(f"{matched} matches from {start} to {end}")
