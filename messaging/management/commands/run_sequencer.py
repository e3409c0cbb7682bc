from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from messaging import sealer


class Command(BaseCommand):
    help = (
        "Seal webhook deliveries as they arrive (LISTEN/NOTIFY, and every --idle seconds) until "
        "SIGTERM or SIGINT. Safe to run several at once; a supervisor restarts it (deploy/)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--idle",
            type=float,
            default=sealer.IDLE_SECONDS,
            help="seconds between looks for pending deliveries when no notification comes",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = sealer.Stop()
        stop.install()
        sealed = sealer.run(stop, idle=options["idle"])
        self.stdout.write(f"Sealed {sealed} deliver{'y' if sealed == 1 else 'ies'}; stopped.")
