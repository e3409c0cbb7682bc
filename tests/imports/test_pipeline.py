"""The import end to end: every real export imports, with its provenance, its attachments and
its warnings; the records it seals are what the design says; the archive still verifies."""

from typing import Any

import pytest

from archive.models import LedgerEntry
from archive.verify import verify_ledger
from imports import pipeline, sealing
from imports.models import ImportJob
from messaging.models import (
    Attachment,
    Channel,
    ChatExport,
    ImportedMessage,
    MediaFile,
    Message,
)

from .importing import EXPORTS, import_chat, make_channel, run, upload

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


def entries_of(job: ImportJob) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(kind="message.imported").order_by("seq"))


def test_it_seals_the_upload_before_any_entry(channel: Channel) -> None:
    job = import_chat(channel, "port-whatsapp-datadonation__chat_ios_ddmmyyyy.txt")
    export = ChatExport.objects.get(pk=job.export_id)
    seqs = [e.seq for e in entries_of(job)]
    assert export.file.entry_id < export.entry_id < job.started_entry < min(seqs)
    assert max(seqs) < job.finished_entry
    assert export.entry.kind == "chat.export" and export.size == export.file.size


def test_it_marks_every_created_message_with_its_provenance(channel: Channel) -> None:
    job = import_chat(channel, "port-whatsapp-datadonation__chat_ios_ddmmyyyy.txt")
    message = Message.objects.filter(source="phone_export", text__contains="shiva").get()
    found = message.payload["import"]
    assert found["custodian"] == "Loris" and found["export"] == job.export_id
    assert found["file_name"] == "port-whatsapp-datadonation__chat_ios_ddmmyyyy.txt"
    assert message.imported_as.get().entry_id == message.entry_id
    assert message.wamid == f"export:{job.export.sha256[:32]}:{found['lines'][0]}"


def test_it_stores_the_four_photos_of_a_zip(channel: Channel) -> None:
    job = import_chat(channel, "egregora__Conversa_do_WhatsApp_com_Teste.zip")
    stored = Attachment.objects.filter(outcome=Attachment.Outcome.STORED)
    assert sorted(a.media_id for a in stored) == [
        "export:IMG-20251027-WA0023.jpg",
        "export:IMG-20251028-WA0033.jpg",
        "export:IMG-20251028-WA0034.jpg",
        "export:IMG-20251028-WA0035.jpg",
    ]
    assert {a.message.type for a in stored} == {"image"}
    assert job.counts["attachments"] == 4 and job.preview["unreferenced"] == []


def test_it_stores_photo_video_audio_and_a_nested_zip_and_ignores_macosx(channel: Channel) -> None:
    job = import_chat(channel, "whatsapp-chat-parser-website__example.zip")
    stored = Attachment.objects.filter(outcome=Attachment.Outcome.STORED)
    assert sorted(a.message.type for a in stored) == ["audio", "document", "image", "video"]
    assert not any("MACOSX" in a.media_id for a in Attachment.objects.all())
    assert MediaFile.objects.filter(sha256=job.export.sha256).exists()


def test_it_stops_at_needs_date_order_and_continues_with_the_order_given(channel: Channel) -> None:
    text = "01/02/2021, 10:00 - Ann: one\n03/04/2021, 11:00 - Loris: two\n"
    job = upload(channel, "WhatsApp Chat with Ann.txt", text.encode())
    assert job.state == State.NEEDS_DATE_ORDER and job.date_order == ""
    job = run(job, date_order="mdy")
    assert job.state == State.DONE
    first = Message.objects.filter(source="phone_export").order_by("sent_at").first()
    assert first is not None and first.payload["import"]["local_time"] == "2021-01-02T10:00:00"


def test_it_flags_a_time_in_a_dst_gap_and_a_fold(channel: Channel) -> None:
    text = "28/03/2021, 01:30 - Ann: in the gap\n31/10/2021, 01:30 - Ann: twice\n"
    job = import_chat(channel, "gap.txt", text.encode(), time_zone="Europe/London")
    gap, fold = Message.objects.filter(source="phone_export").order_by("sent_at")
    assert gap.payload["import"]["flags"] == ["dst-gap"]
    assert gap.sent_at.isoformat() == "2021-03-28T01:30:00+00:00"  # 02:30 BST: forward
    assert fold.payload["import"]["flags"] == ["dst-ambiguous"]
    assert fold.sent_at.isoformat() == "2021-10-31T00:30:00+00:00"  # the first 01:30 (BST)
    assert {p.kind for p in job.problems.all()} >= {"dst-gap", "dst-ambiguous"}


def test_it_resumes_a_run_killed_mid_way_and_seals_each_entry_once(
    channel: Channel, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CHAT_IMPORT_BATCH = 10
    job = upload(channel, "whatsapp-chat-parser-website__old_example_ios_2019.txt")
    real, calls = sealing.seal_batch, []

    def dies_after_two(state: Any, batch: Any) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker killed")
        real(state, batch)

    monkeypatch.setattr(sealing, "seal_batch", dies_after_two)
    job = run(job)
    assert job.state == State.FAILED and job.next_line > 1
    assert ImportedMessage.objects.count() == 20
    monkeypatch.setattr(sealing, "seal_batch", real)
    job = pipeline.run_import(job.pk)
    assert job.state == State.DONE
    lines = list(ImportedMessage.objects.values_list("first_line", flat=True))
    assert len(lines) == len(set(lines)) == job.preview["entries"]
    assert LedgerEntry.objects.filter(kind="message.imported").count() == len(lines)


def test_it_cancels_at_a_batch_boundary_keeping_what_was_sealed(
    channel: Channel, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CHAT_IMPORT_BATCH = 10
    job = upload(channel, "whatsapp-chat-parser-website__old_example_ios_2019.txt")
    real = sealing.seal_batch

    def cancelled_meanwhile(state: Any, batch: Any) -> None:
        real(state, batch)
        pipeline.cancel(state.job, None)

    monkeypatch.setattr(sealing, "seal_batch", cancelled_meanwhile)
    job = run(job)
    assert job.state == State.CANCELLED and job.finished_entry is not None
    assert ImportedMessage.objects.count() == 10
    assert LedgerEntry.objects.get(seq=job.finished_entry).envelope


def test_the_archive_still_verifies_after_an_import(channel: Channel) -> None:
    import_chat(channel, "whatsapp-chat-parser-website__example.zip")
    assert verify_ledger(workers=1).intact
