from typing import Any

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """The reviewers' portal: search, transcripts, tags, flags, lexicons, sampling, the review
    queue and the access log. Work items here are mutable (and audited with django-auditlog);
    decisions, comments and access events are append-only."""

    name = "review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from archive import schedules
        from messaging import hooks
        from review import audit, tasks

        audit.register()
        hooks.wake_on_messages(tasks.wake)  # the lexicon scan of what was just sealed
        schedules.register(self.schedules)

    def schedules(self) -> dict[str, dict[str, Any]]:
        from django_q.models import Schedule

        return {
            "lexicon scan": {
                "func": "review.tasks.scan_new_messages",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
            },
            "review sampling": {
                "func": "review.tasks.draw_samples",
                "schedule_type": Schedule.HOURLY,
            },
        }
