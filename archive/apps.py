from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ArchiveConfig(AppConfig):
    name = "archive"
    verbose_name = "Archive"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from archive import checks, privileges, schedules  # noqa: F401  (checks register)

        schedules.register(schedules.archive_schedules)
        # After every migrate the owner re-grants the runtime role exactly what it may do.
        post_migrate.connect(
            privileges.grant_runtime_privileges, sender=self, dispatch_uid="archive-grants"
        )
        post_migrate.connect(
            schedules.ensure_schedules, sender=self, dispatch_uid="archive-schedules"
        )
