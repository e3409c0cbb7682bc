from typing import Any

from django.core.management.base import BaseCommand

from messaging.sequencer import process_deliveries


class Command(BaseCommand):
    help = "Seal every pending webhook delivery now, then exit."

    def handle(self, *args: Any, **options: Any) -> None:
        sealed = process_deliveries()
        self.stdout.write(f"Sealed {sealed} deliver{'y' if sealed == 1 else 'ies'}.")
