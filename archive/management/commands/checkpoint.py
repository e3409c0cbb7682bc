from typing import Any

from django.core.management.base import BaseCommand

from archive.checkpoints import create_checkpoint


class Command(BaseCommand):
    help = "Sign a checkpoint over the ledger now (nothing happens if nothing was added)."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = create_checkpoint()
        if checkpoint is None:
            self.stdout.write("No new entries since the last checkpoint.")
            return
        self.stdout.write(checkpoint.note, ending="")
