"""Bring the records bucket's Object Lock in line with the records now, as the every-minute task
does, and say what differed; with --errors, list the objects whose last attempt failed."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from retention import object_lock
from retention.models import ObjectLock


class Command(BaseCommand):
    help = (
        "Set COMPLIANCE retention and legal holds on stored media objects where they differ "
        "from their retention records and holds (retention/object_lock.py)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--errors", action="store_true", help="only list objects whose last attempt failed"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["errors"]:
            for lock in ObjectLock.objects.exclude(error="").order_by("storage_name"):
                self.stdout.write(f"{lock.storage_name}: {lock.error}")
            return
        self.stdout.write(object_lock.reconcile().summary())
