from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from messaging.models import Channel


class Command(BaseCommand):
    help = "Create or update a WhatsApp Business channel (idempotent, for scripted setups)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--phone-number-id", required=True)
        parser.add_argument("--display-number", default=None)
        parser.add_argument("--waba-id", default=None)
        parser.add_argument(
            "--token-file",
            type=Path,
            default=None,
            help="a file holding the Cloud API access token (never a token on the command line)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        defaults: dict[str, Any] = {"name": options["name"]}
        for option, field in (("display_number", "display_number"), ("waba_id", "waba_id")):
            if options[option] is not None:
                defaults[field] = options[option]
        if options["token_file"] is not None:
            try:
                defaults["access_token"] = options["token_file"].read_text().strip()
            except OSError as exc:
                raise CommandError(f"cannot read the token file: {exc}") from None
        channel, created = Channel.objects.update_or_create(
            phone_number_id=options["phone_number_id"], defaults=defaults
        )
        self.stdout.write(f"{'Created' if created else 'Updated'} channel {channel}")
