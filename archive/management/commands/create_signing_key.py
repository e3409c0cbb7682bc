from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from archive import signing
from archive.checkpoints import key_name


class Command(BaseCommand):
    help = "Create a new Ed25519 checkpoint signing key at PATH (mode 0600; never overwrites)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, path: Path, **options: Any) -> None:
        if path.exists():
            raise CommandError(f"{path} exists; refusing to overwrite a signing key")
        key = signing.create_private_key(path)
        self.stdout.write(signing.verifier_for(key_name(), key.public_key()).verifier_key)
