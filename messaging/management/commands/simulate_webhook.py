import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from messaging import simulator


class Command(BaseCommand):
    help = "Sign payload files with WHATSAPP_APP_SECRET and POST them to a running portal."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument(
            "--url",
            default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/webhooks/whatsapp/",
        )

    def handle(self, *args: Any, files: list[Path], url: str, **options: Any) -> None:
        if not settings.WHATSAPP_APP_SECRET:
            raise CommandError("WHATSAPP_APP_SECRET is not set: nothing can be signed")
        for path in files:
            try:
                body = path.read_bytes()
            except OSError as exc:
                raise CommandError(f"cannot read {path}: {exc}") from None
            status = simulator.post(url, body, settings.WHATSAPP_APP_SECRET)
            self.stdout.write(f"{path}: HTTP {status}")
            if status != 200:
                raise CommandError(f"the portal answered {status} for {path}")
