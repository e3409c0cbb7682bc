from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """The reviewers' portal: search, transcripts, tags, flags, lexicons, sampling, the review
    queue and the access log. Work items here are mutable (and audited with django-auditlog);
    decisions, comments and access events are append-only."""

    name = "review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from review import audit

        audit.register()
