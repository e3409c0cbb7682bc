import sys
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ArchiveConfig(AppConfig):
    name = "archive"
    verbose_name = "Archive"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # checks, and the anchoring modules' own checks, register on import
        from archive import (  # noqa: F401  (tiles, timestamps, witness: their checks)
            checks,
            privileges,
            publication,
            schedules,
            storage_migration,
            tiles,
            timestamps,
            witness,
        )

        schedules.register(self.schedules)
        storage_migration.register(publication.stored_files)  # `storage migrate` carries them
        checks.refuse_to_start_a_server(sys.argv)  # qcluster, with STORAGE_REQUIRE_WORM
        # After every migrate the owner re-grants the runtime role exactly what it may do.
        post_migrate.connect(
            privileges.grant_runtime_privileges, sender=self, dispatch_uid="archive-grants"
        )
        post_migrate.connect(
            schedules.ensure_schedules, sender=self, dispatch_uid="archive-schedules"
        )

    def schedules(self) -> dict[str, dict[str, Any]]:
        from django.conf import settings
        from django_q.models import Schedule

        return {
            "ledger checkpoint": {
                "func": "archive.tasks.checkpoint_task",
                "schedule_type": Schedule.MINUTES,
                "minutes": settings.LEDGER_CHECKPOINT_MINUTES,
            },
            "ledger anchoring": {
                "func": "archive.tasks.anchor_task",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
            },
            "archive verification": {
                "func": "archive.tasks.verify_task",
                "schedule_type": Schedule.DAILY,
            },
            "archive verification, new entries": {
                "func": "archive.tasks.verify_new_task",
                "schedule_type": Schedule.HOURLY,
            },
        }
