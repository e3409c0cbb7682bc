from django.apps import AppConfig


class RetentionConfig(AppConfig):
    """Retention policies, legal holds, disposition and GDPR requests: what decides how long the
    archive keeps a record, and the one path by which it stops keeping it."""

    name = "retention"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from retention import audit

        audit.register()
