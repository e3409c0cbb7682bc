from typing import Any

from django.core.management.base import BaseCommand

from archive.checkpoints import public_key_pem, verifier_key_text


class Command(BaseCommand):
    help = "Print the checkpoint verifier key (signed-note format) and the public key as PEM."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(verifier_key_text())
        self.stdout.write(public_key_pem(), ending="")
