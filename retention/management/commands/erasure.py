"""GDPR erasure requests (Art. 17) from the command line: record one, or list them."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from retention import erasure
from retention.models import Disposition, ErasureRequest

from ._cli import acting_user, flat, outcome, refused, row, when


class Command(BaseCommand):
    help = (
        "Erasure requests: record one (what may go is disposed of at once, the rest is refused "
        "with its legal ground), or list them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        record = actions.add_parser("record", help="record and decide a data subject's request")
        record.add_argument("number", metavar="NUMBER", help="the subject's WhatsApp number")
        record.add_argument("--reference", default="", metavar="TEXT", help="e.g. a ticket")
        record.add_argument("--user", help="who records it (default: system)")
        actions.add_parser("list", help="every request with its decision and legal ground")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            self.list_requests()
            return
        user = acting_user(options["user"])
        with refused():
            request = erasure.record(user, options["number"], options["reference"])
        lines = [
            f"erasure request {request.pk} for +{request.number}: {request.get_state_display()}",
            f"records: {request.records}",
            f"disposed: {request.disposed}",
            f"due: {when(request.due_at)}",
            *(f"legal ground: {flat(ground)}" for ground in request.legal_ground.splitlines()),
        ]
        for line in lines:
            self.stdout.write(line)
        planned = Disposition.objects.filter(erasure=request).first()
        if planned is not None:
            self.stdout.write(outcome(planned))

    def list_requests(self) -> None:
        self.stdout.write(
            row(
                "id",
                "number",
                "reference",
                "state",
                "records",
                "disposed",
                "received",
                "due",
                "legal ground",
            )
        )
        for request in ErasureRequest.objects.order_by("pk"):
            self.stdout.write(
                row(
                    request.pk,
                    f"+{request.number}",
                    request.reference,
                    request.state,
                    request.records,
                    request.disposed,
                    when(request.received_at),
                    when(request.due_at),
                    request.legal_ground,
                )
            )
