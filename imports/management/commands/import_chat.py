"""`manage.py import_chat FILE… --channel ID --custodian NAME`: import phone chat exports from
the command line, one after the other, through the same pipeline as the portal
(imports/pipeline.py), the job run here instead of by a worker."""

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from imports import pipeline
from imports.models import ImportJob
from messaging.models import Channel

State = ImportJob.State


class Command(BaseCommand):
    help = "Import WhatsApp 'Export chat' files (.txt or .zip) into a channel's archive."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("--channel", required=True, help="channel id or phone_number_id")
        parser.add_argument("--custodian", required=True, help="whose phone the export is from")
        parser.add_argument("--timezone", default="UTC", help="IANA name the phone's times are in")
        parser.add_argument("--date-order", choices=pipeline.ORDERS)
        parser.add_argument(
            "--participant",
            action="append",
            default=[],
            metavar="NAME=NUMBER",
            help='map an author to a WhatsApp number: "Display name=+44…" (repeatable)',
        )
        parser.add_argument("--chat-name", default="")
        parser.add_argument("--dry-run", action="store_true", help="print the preview only")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            pipeline.check_time_zone(options["timezone"])
        except pipeline.ImportRefused as exc:
            raise CommandError(str(exc)) from exc
        mapping = _mapping(options["participant"], options["custodian"])
        channel = None if options["dry_run"] else _channel(options["channel"])
        failed = []
        for name in options["files"]:
            path = Path(name)
            if not path.is_file():
                raise CommandError(f"{name}: no such file")
            if channel is None:
                ok = self._dry_run(path, options)
            else:
                ok = self._import(channel, path, mapping, options)
            if not ok:
                failed.append(name)
        if failed:
            raise CommandError(f"not imported: {', '.join(failed)}")

    def _dry_run(self, path: Path, options: dict[str, Any]) -> bool:
        preview = pipeline.preview_file(
            path,
            path.name,
            time_zone=options["timezone"],
            date_order=options["date_order"],
            custodian=options["custodian"],
        )
        self._print(preview.to_json())
        return self._readable(path.name, preview.to_json(), options["date_order"])

    def _import(
        self, channel: Channel, path: Path, mapping: dict[str, Any], options: dict[str, Any]
    ) -> bool:
        with path.open("rb") as stream:
            try:
                job = pipeline.upload(
                    channel=channel,
                    custodian=options["custodian"],
                    time_zone=options["timezone"],
                    file_name=path.name,
                    stream=stream,
                    uploaded_by=None,
                    inline=True,
                )
            except pipeline.ImportRefused as exc:
                self.stderr.write(str(exc))
                return False
        if job.state == State.DONE:  # an identical file
            self.stdout.write(f"{path.name}: {job.preview.get('identical', 'already imported')}")
            return True
        self._print(job.preview)
        if not self._readable(path.name, job.preview, options["date_order"]):
            return False
        try:
            job = pipeline.confirm(
                job,
                date_order=options["date_order"] or job.preview["date_order"],
                mapping=mapping,
                chat_name=options["chat_name"],
                one_to_one=job.one_to_one,
                user=None,
                queue=False,
            )
        except ValidationError as exc:
            self.stderr.write(f"{path.name}: {' '.join(exc.messages)}")
            return False
        job = pipeline.run_import(job.pk)
        if job.state != State.DONE:
            self.stderr.write(f"{path.name}: import {job.state}: {job.error}")
            return False
        counts = ", ".join(f"{k} {v}" for k, v in job.counts.items())
        self.stdout.write(f"{path.name}: imported as export #{job.export_id} ({counts})")
        return True

    def _readable(self, name: str, preview: dict[str, Any], order: str | None) -> bool:
        if preview.get("error"):
            self.stderr.write(f"refused: {preview['error']}")
            return False
        if preview.get("date_order_tentative") and not order:
            self.stderr.write(
                f"{name}: the date order cannot be decided from the file"
                f" ({preview.get('date_order_evidence')}): run again with --date-order dmy, mdy"
                " or ymd"
            )
            return False
        return True

    def _print(self, preview: dict[str, Any]) -> None:
        shown = {k: preview.get(k) for k in PREVIEW_KEYS}
        self.stdout.write(json.dumps(shown, indent=2, ensure_ascii=False, default=str))


PREVIEW_KEYS = (
    "file_name",
    "detected",
    "date_order",
    "date_order_evidence",
    "date_order_tentative",
    "entries",
    "counts",
    "first",
    "last",
    "authors",
    "chat_name",
    "one_to_one",
    "warnings",
    "problems",
    "missing",
    "unreferenced",
    "error",
)


def _channel(value: str) -> Channel:
    found = Channel.objects.filter(phone_number_id=value).first()
    if found is None and value.isdigit():
        found = Channel.objects.filter(pk=int(value)).first()
    if found is None:
        raise CommandError(f"no channel {value!r} (give its id or phone_number_id)")
    return found


def _mapping(pairs: list[str], custodian: str) -> dict[str, Any]:
    mapping: dict[str, Any] = {custodian: {"as": "custodian"}}
    for pair in pairs:
        name, sep, number = pair.rpartition("=")
        if not sep or not name.strip() or not number.strip():
            raise CommandError(f'--participant {pair!r}: write it as "Display name=+44…"')
        mapping[name.strip()] = {"as": "number", "number": number.strip()}
    return mapping
