"""Retention policies from the command line: list them, set a channel's own, change the default.

Every change goes through retention.policies.save(): sealed, audited, and lengthening (never
shortening) what is already sealed.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Count

from messaging.models import Channel
from retention import policies
from retention.models import RetentionPolicy, RetentionRecord

from ._cli import acting_user, period, refused, row


class Command(BaseCommand):
    help = "Retention policies: list, set a channel's own policy, or change the default."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        actions.add_parser(
            "list", help="every policy: name, days, rule, default, channels, live records"
        )
        own = actions.add_parser(
            "set", help="make a policy the channel's own (created, or changed if it exists)"
        )
        own.add_argument("--channel", required=True, metavar="PHONE_NUMBER_ID")
        own.add_argument("--name", help='the policy\'s name (default: "Channel PHONE_NUMBER_ID")')
        default = actions.add_parser(
            "default", help="change the policy of every channel no other policy names"
        )
        default.add_argument("--name", help="rename it too (the name often states the period)")
        for change in (own, default):
            change.add_argument("--days", required=True, type=period, metavar="N")
            change.add_argument("--rule", required=True, metavar="TEXT", help="the rule it follows")
            change.add_argument(
                "--allow-zero",
                action="store_true",
                help="confirm a period of 0 days (disposed of at the next run)",
            )
            change.add_argument("--user", help="the administrator to record (default: system)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            self.list_policies()
            return
        if options["days"] == 0:
            if not options["allow_zero"]:
                raise CommandError(f"{policies.ZERO_DAY_WARNING} Add --allow-zero to go on.")
            self.stderr.write(f"warning: {policies.ZERO_DAY_WARNING}")
        if options["action"] == "set":
            lengthened = self.set_channel_policy(options)
        else:
            lengthened = self.change_default(options)
        self.stdout.write(f"records lengthened: {lengthened}")

    def list_policies(self) -> None:
        live = dict(
            RetentionRecord.objects.filter(disposed_at__isnull=True)
            .values("policy")
            .annotate(n=Count("pk"))
            .values_list("policy", "n")
        )
        self.stdout.write(row("name", "days", "rule", "default", "channels", "live records"))
        for policy in RetentionPolicy.objects.prefetch_related("channels"):
            channels = sorted(c.phone_number_id for c in policy.channels.all())
            self.stdout.write(
                row(
                    policy.name,
                    policy.days,
                    policy.rule,
                    "yes" if policy.is_default else "no",
                    ",".join(channels),
                    live.get(policy.pk, 0),
                )
            )

    def set_channel_policy(self, options: dict[str, Any]) -> int:
        """Make the policy the channel's own: the only one naming it, so the one that applies
        (retention.assign takes the longest of the policies naming a channel)."""
        user = acting_user(options["user"])
        channel = Channel.objects.filter(phone_number_id=options["channel"]).first()
        if channel is None:
            raise CommandError(f"no channel with the phone number id {options['channel']!r}")
        name = (options["name"] or f"Channel {channel.phone_number_id}").strip()
        lengthened, taken = 0, []
        with transaction.atomic(), refused():
            policy = RetentionPolicy.objects.select_for_update().filter(name=name).first()
            if policy is not None and policy.is_default:
                raise CommandError(
                    f"{name!r} is the default policy; change it with `retention default`"
                )
            for other in RetentionPolicy.objects.filter(channels=channel).exclude(name=name):
                rest = [c for c in other.channels.all() if c.pk != channel.pk]
                # Its period is unchanged: no zero-day confirmation is asked for here.
                lengthened += policies.save(other, user, rest, allow_zero=True)
                taken.append(str(other))
            created = policy is None
            policy = policy or RetentionPolicy(name=name)
            policy.days, policy.rule = options["days"], options["rule"].strip()
            policy.full_clean(exclude=["channels"])
            named = [] if created else [c for c in policy.channels.all() if c.pk != channel.pk]
            lengthened += policies.save(
                policy, user, [*named, channel], allow_zero=options["allow_zero"]
            )
        for other_policy in taken:
            self.stdout.write(f"channel {channel.phone_number_id} taken from policy {other_policy}")
        self.stdout.write(f"{'created' if created else 'changed'} policy {policy}")
        self.stdout.write(f"channel {channel.phone_number_id} follows policy {policy.name}")
        if named:
            others = ", ".join(sorted(c.phone_number_id for c in named))
            self.stdout.write(f"policy {policy.name} also applies to channels {others}")
        return lengthened

    def change_default(self, options: dict[str, Any]) -> int:
        user = acting_user(options["user"])
        with transaction.atomic(), refused():
            policy = RetentionPolicy.objects.select_for_update().get(is_default=True)
            policy.days, policy.rule = options["days"], options["rule"].strip()
            if options["name"]:
                policy.name = options["name"].strip()
            policy.full_clean(exclude=["channels"])
            lengthened = policies.save(policy, user, allow_zero=options["allow_zero"])
        self.stdout.write(f"changed the default policy: {policy}")
        return lengthened
