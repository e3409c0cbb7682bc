"""What the pipeline tests share: a channel, the fixtures, and an import run the way a user runs
one (upload → analyse → confirm → run), inline instead of through django-q2."""

import io
from pathlib import Path
from typing import Any

from django.conf import settings

from imports import pipeline
from imports.models import ImportJob
from messaging.models import Channel

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chat-exports"
NOT_AN_EXPORT = "whatsapp-chat-parser__test_lines_formats_and_attachments.txt"
EXPORTS = sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".txt", ".zip"))
EXPORTS.remove(NOT_AN_EXPORT)


def make_channel(phone_number_id: str = "1001") -> Channel:
    return Channel.objects.create(
        name="Desk", phone_number_id=phone_number_id, display_number="+44 20"
    )


def upload(channel: Channel, name: str, data: bytes | None = None, **options: Any) -> ImportJob:
    """Upload a fixture (or `data` under that name) and analyse it."""
    body = (FIXTURES / name).read_bytes() if data is None else data

    return pipeline.upload(
        channel=channel,
        custodian=options.pop("custodian", "Loris"),
        time_zone=options.pop("time_zone", "Europe/London"),
        file_name=name,
        stream=io.BytesIO(body),
        uploaded_by=options.pop("user", None),
        inline=True,
    )


def run(job: ImportJob, **choices: Any) -> ImportJob:
    """Confirm with the preview's reading (or `choices`) and run the import to its end."""
    if job.state not in (ImportJob.State.READY, ImportJob.State.NEEDS_DATE_ORDER):
        return job
    job = pipeline.confirm(
        job,
        date_order=choices.pop("date_order", None) or job.preview["date_order"],
        mapping=choices.pop("mapping", {}),
        chat_name=choices.pop("chat_name", ""),
        one_to_one=choices.pop("one_to_one", job.one_to_one),
        user=None,
        queue=False,
    )
    return pipeline.run_import(job.pk)


def import_chat(
    channel: Channel, name: str, data: bytes | None = None, **options: Any
) -> ImportJob:
    choices = {
        k: options.pop(k)
        for k in ("date_order", "mapping", "chat_name", "one_to_one")
        if k in options
    }
    return run(upload(channel, name, data, **options), **choices)


def batch_size(size: int) -> None:
    settings.CHAT_IMPORT_BATCH = size
