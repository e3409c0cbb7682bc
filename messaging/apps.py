from typing import Any

from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self) -> None:
        from archive import schedules, storage_migration
        from messaging import checks, media  # noqa: F401  (system checks)

        schedules.register(self.schedules)
        storage_migration.register(media.stored_files)

    def schedules(self) -> dict[str, dict[str, Any]]:
        """archive/schedules.py: the sweeps are backstops for a lost wake-up."""
        from django_q.models import Schedule

        return {
            "delivery sweep": {
                "func": "messaging.tasks.seal_deliveries",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
            },
            # raises the backlog alarm (messaging/health.py); run_sequencer checks it too
            "backlog alarm": {
                "func": "messaging.health.check_backlog",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
            },
            "media fetch": {
                "func": "messaging.tasks.fetch_media",
                "schedule_type": Schedule.MINUTES,
                "minutes": 2,
            },
        }
