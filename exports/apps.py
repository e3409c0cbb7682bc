from typing import Any

from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"

    def ready(self) -> None:
        from archive import schedules
        from exports import pdf_sign  # noqa: F401  (its checks register on import)

        schedules.register(self.schedules)

    def schedules(self) -> dict[str, dict[str, Any]]:
        from django_q.models import Schedule

        return {
            "export expiry": {
                "func": "exports.tasks.expire_exports",
                "schedule_type": Schedule.DAILY,
            },
        }
