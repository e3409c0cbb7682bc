from typing import Any

from django.apps import AppConfig


class BridgeConfig(AppConfig):
    name = "bridge"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Bridge: email, Slack, Teams, replies, journal"

    def ready(self) -> None:
        from anymail.signals import inbound

        from archive import schedules
        from bridge import checks, dispatch, webhooks  # noqa: F401  (system checks)
        from messaging import hooks

        inbound.connect(webhooks.received, dispatch_uid="clientwindow.bridge.inbound")
        hooks.wake_on_messages(dispatch.wake)  # staff notifications and journal copies
        hooks.wake_on_media(dispatch.wake)  # a notification may be waiting for this media
        schedules.register(self.schedules)
        _register_with_lower_floors()

    def schedules(self) -> dict[str, dict[str, Any]]:
        from django_q.models import Schedule

        return {
            "bridge": {
                "func": "bridge.tasks.run",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
            },
            "reply emails": {
                "func": "bridge.tasks.process_replies",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
            },
            "imap poll": {  # a no-op unless IMAP_URL is set
                "func": "bridge.tasks.poll_imap",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
            },
        }


def _register_with_lower_floors() -> None:
    """What the bridge adds to review's transcripts and retention's record of processing."""
    from bridge import record_of_processing, transcript
    from retention import record_of_processing as record
    from review.transcript import STAFF_NAMERS

    if transcript.name_senders not in STAFF_NAMERS:
        STAFF_NAMERS.append(transcript.name_senders)
    if record_of_processing.routes not in record.ROUTES:
        record.ROUTES.append(record_of_processing.routes)
        record.TRANSFERS.append(record_of_processing.chat_transfers)
