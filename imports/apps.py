from typing import Any

from django.apps import AppConfig


class ImportsConfig(AppConfig):
    """Phone "Export chat" files brought into the archive with their provenance (docs/IMPORTS.md):
    the upload sealed before it is parsed, each entry sealed as `message.imported`."""

    name = "imports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from archive import schedules

        schedules.register(self.schedules)

    def schedules(self) -> dict[str, dict[str, Any]]:
        from django_q.models import Schedule

        return {
            # a worker that died mid-import leaves its job running: resumed from its cursor
            "chat import resume": {
                "func": "imports.tasks.resume_imports",
                "schedule_type": Schedule.MINUTES,
                "minutes": 5,
            },
        }
