from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from exports import formats, jobs
from exports.models import Export
from exports.scope import Scope
from retention.models import LegalHold

# Exports run from a shell are attributed to this inactive account unless --user names someone:
# the ledger then says honestly that the command line asked, not a person in the portal.
COMMAND_LINE_USER = "command-line"


class Command(BaseCommand):
    help = (
        "Export a conversation, a participant's conversations or a search, sealed and proven "
        "like a portal export. PATH is a file for pdf, csv and bundle, a directory for eml "
        "and rsmf."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--conversation", type=int, metavar="ID")
        which.add_argument("--participant", metavar="NUMBER")
        which.add_argument("--hold", metavar="MATTER", help="a legal hold's matter name")
        which.add_argument(
            "--query",
            metavar="TEXT",
            help="search text in the portal's syntax; filters as a query string, e.g. \"q=fund"
            '&direction=in" (a TEXT without "=" is the query alone)',
        )
        parser.add_argument(
            "--redact-others",
            action="store_true",
            help="with --participant: a GDPR subject access export, everyone else pseudonymised",
        )
        parser.add_argument("--from", dest="date_from", type=date.fromisoformat)
        parser.add_argument("--to", dest="date_to", type=date.fromisoformat)
        parser.add_argument("--format", required=True, choices=list(formats.FORMATS))
        parser.add_argument("--output", required=True, type=Path, metavar="PATH")
        parser.add_argument("--user", help="the requester to record (default: command-line)")

    def handle(self, *args: Any, **options: Any) -> None:
        output: Path = options["output"].resolve()
        if output.exists() and not (output.is_dir() and not any(output.iterdir())):
            raise CommandError(f"{output} exists; name a new file or an empty directory.")
        if output.is_dir():
            output.rmdir()  # an empty directory is replaced by the export's own
        try:
            scope = Scope.requested(
                self._kind(options),
                conversation=options["conversation"],
                date_from=options["date_from"],
                date_to=options["date_to"],
                query=self._query(options["query"]),
                participant=options["participant"] or "",
                redact_others=options["redact_others"],
                hold=self._hold(options["hold"]),
            )
        except ValidationError as problem:
            raise CommandError(" ".join(problem.messages)) from None
        export = jobs.request_export(
            self._user(options["user"]), scope, options["format"], queue=False
        )
        state = jobs.run_export(str(export.pk), output=output)
        export.refresh_from_db()
        if state != Export.State.DONE:
            raise CommandError(f"export {export.pk} {state}: {export.error}")
        self.stdout.write(
            f"Exported {export.message_count} messages of {export.scope_label} to {output}\n"
            f"export {export.pk}, proven against checkpoint {export.checkpoint_size}, "
            f"SHA-256 {export.file_sha256}"
        )

    @staticmethod
    def _hold(matter: str | None) -> int | None:
        if matter is None:
            return None
        hold = LegalHold.objects.filter(matter=matter).values_list("pk", flat=True).first()
        if hold is None:
            raise CommandError(f"no legal hold for the matter {matter!r}")
        return hold

    @staticmethod
    def _kind(options: dict[str, Any]) -> str:
        if options["conversation"] is not None:
            return "conversation"
        if options["hold"] is not None:
            return "hold"
        return "participant" if options["participant"] is not None else "search"

    @staticmethod
    def _query(text: str | None) -> dict[str, str]:
        if text is None:
            return {}
        if "=" not in text:
            return {"q": text}
        return dict(parse_qsl(text, keep_blank_values=False))

    @staticmethod
    def _user(username: str | None) -> Any:
        users = get_user_model()
        if username:
            try:
                return users.objects.get(username=username)
            except users.DoesNotExist:
                raise CommandError(f"no user {username!r}") from None
        user, _ = users.objects.get_or_create(
            username=COMMAND_LINE_USER, defaults={"is_active": False}
        )
        return user
