"""Bad input is refused in analysis, with the file name and the line where known, and nothing
but the upload itself is sealed for it; an upload over the cap is not even stored."""

import io
import zipfile

import pytest

from archive.models import LedgerEntry
from imports import pipeline
from imports.models import ImportJob
from messaging.models import Channel, ChatExport, ImportedMessage, Message

from .importing import make_channel, upload

CHAT = b"01/02/2021, 10:00 - Ann: hello\n13/02/2021, 10:01 - Loris: hi\n"


@pytest.fixture
def channel(db: None) -> Channel:
    return make_channel()


def zipped(members: dict[str, bytes]) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return data.getvalue()


def refused(channel: Channel, name: str, data: bytes) -> ImportJob:
    first = LedgerEntry.objects.count()
    job = upload(channel, name, data)
    assert job.state == ImportJob.State.REFUSED
    assert name in job.error
    kinds = set(LedgerEntry.objects.filter(seq__gte=first).values_list("kind", flat=True))
    assert kinds <= {"media.file", "chat.export"}  # the upload, and nothing else
    assert not Message.objects.exists() and not ImportedMessage.objects.exists()
    assert job.problems.get().kind == "refused"
    return job


def test_it_refuses_a_file_that_is_not_an_export(channel: Channel) -> None:
    refused(channel, "notes.txt", b"shopping list\nmilk\neggs\n")


def test_it_refuses_a_zip_bomb(channel: Channel) -> None:
    bomb = zipped({"_chat.txt": CHAT, "IMG-0001.jpg": bytes(60 * 1024 * 1024)})
    refused(channel, "bomb.zip", bomb)


def test_it_refuses_a_member_whose_path_leaves_the_zip(channel: Channel) -> None:
    refused(channel, "traversal.zip", zipped({"_chat.txt": CHAT, "../../etc/evil.jpg": b"x"}))


def test_it_refuses_invalid_utf8_naming_the_line(channel: Channel) -> None:
    job = refused(channel, "latin1.txt", CHAT + b"13/02/2021, 10:02 - Ann: caf\xe9\n")
    assert job.problems.get().line == 3 and "line 3" in job.error


def test_it_refuses_a_line_of_ten_megabytes_naming_the_line(channel: Channel) -> None:
    job = refused(channel, "long.txt", CHAT + b"13/02/2021, 10:02 - Ann: " + b"a" * 10_000_000)
    assert job.problems.get().line == 3


def test_it_refuses_an_upload_over_the_cap_storing_nothing(channel: Channel, settings) -> None:
    settings.CHAT_IMPORT_MAX_BYTES = 100
    before = LedgerEntry.objects.count()
    with pytest.raises(pipeline.ImportRefused, match=r"big\.txt: larger than the 100 bytes"):
        upload(channel, "big.txt", CHAT * 10)
    assert LedgerEntry.objects.count() == before and not ChatExport.objects.exists()


def test_it_refuses_an_unknown_time_zone_storing_nothing(channel: Channel) -> None:
    with pytest.raises(pipeline.ImportRefused, match="not a time zone"):
        upload(channel, "chat.txt", CHAT, time_zone="Mars/Olympus")
    assert not ChatExport.objects.exists()
