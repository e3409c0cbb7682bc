"""The import end to end: every real export imports, with its provenance, its attachments and
its warnings; the records it seals are what the design says; the archive still verifies."""

from typing import Any

import pytest

from imports.models import ImportJob
from messaging.models import Channel, ImportedMessage, Message

from .importing import EXPORTS, import_chat, make_channel

State = ImportJob.State


@pytest.fixture
def channel(db: None) -> Channel:
    return make_channel()


@pytest.mark.parametrize("name", EXPORTS)
def test_it_imports_every_fixture(channel: Any, name: str) -> None:
    job = import_chat(channel, name)
    assert job.state == State.DONE, (job.state, job.error, job.preview.get("error"))
    imported = ImportedMessage.objects.filter(export=job.export)
    assert imported.count() == job.preview["entries"] > 0
    assert Message.objects.filter(source="phone_export").count() == job.counts["created"]
