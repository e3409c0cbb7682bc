from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from messaging import simulator
from messaging.models import Channel


class Command(BaseCommand):
    help = "Local runs: create the demo channel and post demo conversations through the webhook."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/webhooks/whatsapp/")

    def handle(self, *args: Any, url: str, **options: Any) -> None:
        if not settings.LOCAL_RUN:
            raise CommandError("demo data exists only in local runs")
        channel, created = Channel.objects.get_or_create(
            phone_number_id=simulator.DEMO_CHANNEL["phone_number_id"],
            defaults={k: v for k, v in simulator.DEMO_CHANNEL.items() if k != "phone_number_id"},
        )
        if not created:
            self.stdout.write("Demo channel exists; nothing seeded.")
            return
        _review_setup()
        _bridge_setup(channel)
        bodies = simulator.demo_bodies()
        statuses = [simulator.post(url, body, settings.WHATSAPP_APP_SECRET) for body in bodies]
        if set(statuses) != {200}:
            raise CommandError(f"the portal refused demo deliveries: {sorted(set(statuses))}")
        self.stdout.write(f"Seeded {len(bodies)} demo deliveries on {channel}.")
        self.stdout.write(f"Staff notifications and journal copies go to {settings.EMAIL_URL}")


def _bridge_setup(channel: Channel) -> None:
    """A route: client messages to a relationship manager and a journal mailbox (local runs
    write mail to var/outbox), replies through the gateway on MAIL_GATEWAY_PORT."""
    from bridge.models import Route

    Route.objects.get_or_create(
        channel=channel,
        conversation=None,
        defaults={
            "name": "Demo desk",
            "email_recipients": ["relationship.manager@example.com"],
            "journal_address": "journal@example.com",
        },
    )


def _review_setup() -> None:
    """Tags and policies for the demo, created before the messages so the lexicon sees them."""
    from review.models import LexiconPolicy, LexiconTerm, SamplingPolicy, Tag

    for name, colour in (("Suitability", "#b3261e"), ("Complaint", "#7a5200"), ("KYC", "#1f5f99")):
        Tag.objects.get_or_create(name=name, defaults={"colour": colour})
    policy, created = LexiconPolicy.objects.get_or_create(
        name="Transfers and guarantees", defaults={"severity": "high"}
    )
    if created:
        for kind, value in (
            ("term", "guaranteed"),
            ("phrase", "bond fund"),
            ("regex", r"€[\d,.]+"),
        ):
            LexiconTerm.objects.create(policy=policy, kind=kind, value=value)
    SamplingPolicy.objects.get_or_create(
        name="Weekly 10% sample", defaults={"percent": 10, "period": "week"}
    )
