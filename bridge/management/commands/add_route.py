"""Create or update a bridge route for a channel (or one conversation of it)."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from bridge.models import Route
from bridge.routes import check_addresses, check_webhook_url
from messaging.models import Channel, Conversation


class Command(BaseCommand):
    help = (
        "Create or update the route of a channel (or, with --conversation, of one conversation): "
        "who is notified of client messages, who may reply, and the journal address."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--channel", required=True, metavar="PHONE_NUMBER_ID")
        parser.add_argument(
            "--conversation",
            type=int,
            help="a conversation id: a route for one client (an assigned relationship manager)",
        )
        parser.add_argument("--email", action="append", default=[], metavar="ADDR")
        parser.add_argument("--user", action="append", default=[], metavar="USERNAME")
        parser.add_argument(
            "--reply-sender",
            action="append",
            default=[],
            metavar="ADDR",
            help="another address allowed to reply",
        )
        parser.add_argument("--slack-url", default="", metavar="URL")
        parser.add_argument("--teams-url", default="", metavar="URL")
        parser.add_argument("--journal", default="", metavar="ADDR")
        parser.add_argument("--metadata-only", action="store_true")
        parser.add_argument("--name", default="")
        parser.add_argument("--inactive", action="store_true", help="stop using the route")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        channel, conversation = _where(options["channel"], options["conversation"])
        users = _users(options["user"])
        try:
            defaults = _settings(options)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        route, created = Route.objects.update_or_create(
            channel=channel, conversation=conversation, defaults=defaults
        )
        route.users.set(users)
        targets = [
            f"{len(route.email_recipients) + len(users)} email recipient(s)",
            "Slack" if route.slack_url else "",
            "Teams" if route.teams_url else "",
            f"journal {route.journal_address}" if route.journal_address else "",
            "metadata only" if route.metadata_only else "",
        ]
        self.stdout.write(
            f"{'Created' if created else 'Updated'} route {route.pk} for {route}: "
            + ", ".join(t for t in targets if t)
        )


def _where(
    phone_number_id: str, conversation_id: int | None
) -> tuple[Channel, Conversation | None]:
    """The route's channel, and its conversation when it is for one only."""
    channel = Channel.objects.filter(phone_number_id=phone_number_id).first()
    if channel is None:
        raise CommandError(f"no channel with phone_number_id {phone_number_id!r}")
    if conversation_id is None:
        return channel, None
    conversation = Conversation.objects.filter(pk=conversation_id, channel=channel).first()
    if conversation is None:
        raise CommandError(f"no conversation {conversation_id} on this channel")
    return channel, conversation


def _users(usernames: list[str]) -> list[Any]:
    """The portal users the route emails (each must have an address)."""
    users = []
    for username in usernames:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if not user.email:
            raise CommandError(f"user {username!r} has no email address")
        users.append(user)
    return users


def _settings(options: dict[str, Any]) -> dict[str, Any]:
    """The route's fields from the options, addresses and webhook URLs checked
    (ValidationError)."""
    return {
        "email_recipients": check_addresses(options["email"], "--email"),
        "reply_senders": check_addresses(options["reply_sender"], "--reply-sender"),
        "slack_url": check_webhook_url(options["slack_url"], "Slack"),
        "teams_url": check_webhook_url(options["teams_url"], "Teams"),
        "journal_address": (
            check_addresses([options["journal"]], "--journal")[0] if options["journal"] else ""
        ),
        "metadata_only": options["metadata_only"],
        "active": not options["inactive"],
        "name": options["name"],
    }
