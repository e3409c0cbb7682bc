from typing import Any

from django.apps import AppConfig


class RetentionConfig(AppConfig):
    """Retention policies, legal holds, disposition and GDPR requests: what decides how long the
    archive keeps a record, and the one path by which it stops keeping it."""

    name = "retention"
    default_auto_field = "django.db.models.BigAutoField"
    # every captured record gets its retention record as it is sealed (messaging.E001 otherwise)
    capture_hooks = ("sealed", "attached")

    def ready(self) -> None:
        from archive import privileges, schedules
        from messaging import hooks
        from retention import assign, audit, disposition, erasure, search_filter
        from review import search

        audit.register()
        disposition.finished.connect(erasure.settle_after, dispatch_uid="retention.settle")
        search.add_filter(search_filter.HOLD)
        hooks.on_sealed(assign.sealed)
        hooks.on_attached(assign.attached)
        schedules.register(self.schedules)
        # the one way content is deleted (retention/migrations/0002_rules.py)
        privileges.runtime_may_execute("retention_dispose(bigint[], bigint)")

    def schedules(self) -> dict[str, dict[str, Any]]:
        from django_q.models import Schedule

        return {
            "retention disposition": {
                "func": "retention.tasks.apply_retention",
                "schedule_type": Schedule.DAILY,
            },
            "object lock": {
                "func": "retention.tasks.reconcile_object_locks",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
            },
            "legal hold refresh": {
                "func": "retention.tasks.refresh_holds",
                "schedule_type": Schedule.MINUTES,
                "minutes": 15,
            },
        }
