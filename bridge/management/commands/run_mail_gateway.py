"""Run the SMTP gateway for staff replies until interrupted."""

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bridge.checks import (
    UNAUTHENTICATED_SENDERS,
    UNAUTHENTICATED_SENDERS_HINT,
    unauthenticated_senders,
)
from bridge.gateway import controller


class Command(BaseCommand):
    help = "Accept staff reply emails over SMTP (for an MX or relay of BRIDGE_REPLY_DOMAIN)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.MAIL_GATEWAY_HOST)
        parser.add_argument("--port", type=int, default=settings.MAIL_GATEWAY_PORT)

    def handle(self, *args: Any, **options: Any) -> None:
        if unauthenticated_senders():  # bridge.E003: refused, not merely warned about
            raise CommandError(f"{UNAUTHENTICATED_SENDERS} {UNAUTHENTICATED_SENDERS_HINT}")
        gateway = controller(options["host"], options["port"])
        gateway.start()
        self.stdout.write(
            f"Mail gateway on {options['host']}:{options['port']} for "
            f"reply+…@{settings.BRIDGE_REPLY_DOMAIN}"
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        try:
            stop.wait()
        finally:
            gateway.stop()
