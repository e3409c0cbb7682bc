"""Legal holds from the command line: create, list, show, release and refresh them."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count

from retention import holds
from retention.holds import HoldScope
from retention.models import HoldItem, LegalHold

from ._cli import acting_user, day, flat, refused, row, username, when


class Command(BaseCommand):
    help = "Legal holds: create, list, show, release, or refresh what the active ones cover."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser(
            "create",
            help="hold messages: participants, conversations and a search add to the scope; "
            "--from and --to narrow it",
        )
        create.add_argument("--matter", required=True, metavar="NAME")
        create.add_argument("--reason", required=True, metavar="TEXT")
        create.add_argument("--number", default="", metavar="MATTER_NUMBER")
        create.add_argument(
            "--participant", action="append", default=[], metavar="NUMBER", help="repeatable"
        )
        create.add_argument(
            "--conversation", action="append", default=[], type=int, metavar="ID", help="repeatable"
        )
        create.add_argument("--query", metavar="TEXT", help="search box text, as in the portal")
        create.add_argument("--custodian", action="append", default=[], metavar="NAME")
        create.add_argument("--from", dest="date_from", type=day, metavar="YYYY-MM-DD")
        create.add_argument("--to", dest="date_to", type=day, metavar="YYYY-MM-DD")
        create.add_argument("--user", help="who places the hold (default: system)")
        actions.add_parser("list", help="every hold: id, matter, number, state, messages, created")
        show = actions.add_parser("show", help="one hold in full")
        show.add_argument("matter", metavar="MATTER")
        release = actions.add_parser("release", help="end a hold (what it covered may then go)")
        release.add_argument("matter", metavar="MATTER")
        release.add_argument("--reason", required=True, metavar="TEXT")
        release.add_argument("--user", help="who releases it (default: system)")
        actions.add_parser("refresh", help="add newly sealed messages to every active hold")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            self.create(options)
        elif action == "list":
            self.list_holds()
        elif action == "show":
            self.show(find(options["matter"]))
        elif action == "release":
            user = acting_user(options["user"])
            with refused():
                hold = holds.release(find(options["matter"]), user, options["reason"])
            self.stdout.write(f"hold {hold.pk} released: {hold.matter}")
        else:
            active = LegalHold.objects.filter(released_at__isnull=True).count()
            self.stdout.write(f"hold items added: {holds.refresh_active()}")
            self.stdout.write(f"active holds: {active}")

    def create(self, options: dict[str, Any]) -> None:
        user = acting_user(options["user"])
        for number in options["participant"]:
            if not any(c.isdigit() for c in number):
                raise CommandError(f"{number!r} is not a WhatsApp number")
        for option, name in (("matter", "matter"), ("number", "matter_number")):
            limit = getattr(LegalHold._meta.get_field(name), "max_length", None)
            if limit is not None and len(options[option].strip()) > limit:
                raise CommandError(f"--{option} is longer than {limit} characters")
        with refused():
            scope = HoldScope.build(
                conversations=options["conversation"],
                participants=options["participant"],
                query={"q": options["query"]} if options["query"] else None,
                date_from=options["date_from"],
                date_to=options["date_to"],
            )
            hold = holds.create(
                user,
                matter=options["matter"],
                reason=options["reason"],
                scope=scope,
                matter_number=options["number"],
                custodians="\n".join(options["custodian"]),
            )
        self.stdout.write(f"hold {hold.pk} created: {hold.matter}")
        self.stdout.write(f"scope: {scope.label()}")
        self.stdout.write(f"messages held: {holds.message_counts([hold]).get(hold.pk, 0)}")

    def list_holds(self) -> None:
        every = list(LegalHold.objects.order_by("pk"))
        counts = holds.message_counts(every)
        self.stdout.write(row("id", "matter", "number", "state", "messages", "created"))
        for hold in every:
            self.stdout.write(
                row(
                    hold.pk,
                    hold.matter,
                    hold.matter_number,
                    "active" if hold.active else "released",
                    counts.get(hold.pk, 0),
                    when(hold.created_at),
                )
            )

    def show(self, hold: LegalHold) -> None:
        lines = [
            f"hold {hold.pk}: {hold.matter}",
            f"matter number: {flat(hold.matter_number)}",
            f"state: {'active' if hold.active else 'released'}",
            f"reason: {flat(hold.reason)}",
            *(f"custodian: {flat(name)}" for name in hold.custodians.splitlines() if name.strip()),
            f"scope: {HoldScope.from_json(hold.scope).label()}",
            f"created: {when(hold.created_at)} by {username(hold.created_by)}",
            f"refreshed: {when(hold.refreshed_at)}",
        ]
        if not hold.active:
            lines.append(f"released: {when(hold.released_at)} by {username(hold.released_by)}")
            lines.append(f"release reason: {flat(hold.release_reason)}")
        kinds = dict(
            HoldItem.objects.filter(hold=hold)
            .values("kind")
            .annotate(n=Count("entry"))
            .values_list("kind", "n")
        )
        lines.append(f"messages held: {kinds.get('message', 0)}")
        lines.append(f"items held: {sum(kinds.values())}")
        lines += [f"  {kind}: {n}" for kind, n in sorted(kinds.items())]
        for line in lines:
            self.stdout.write(line)


def find(matter: str) -> LegalHold:
    try:
        return LegalHold.objects.get(matter=matter.strip())
    except LegalHold.DoesNotExist:
        raise CommandError(f"no hold for the matter {matter!r}") from None
