"""Imported records under retention: each new seq has a retention record under the channel's
policy, the upload is kept as long as what was imported from it, and a legal hold by participant
covers imported messages."""

import pytest

from archive.models import LedgerEntry
from imports.models import ImportJob
from messaging.models import Channel, ChatExport, Message
from retention import holds
from retention.models import HoldItem, RetentionPolicy, RetentionRecord

from .importing import import_chat, make_channel

ANDROID = "port-whatsapp-datadonation__file3_android_ddmmyyyy_crlf.txt"
CLIENT = {"person2": {"as": "number", "number": "+31 6 1234 5678"}}


@pytest.fixture
def channel(db: None) -> Channel:
    return make_channel()


@pytest.fixture
def desk_policy(channel: Channel) -> RetentionPolicy:
    policy = RetentionPolicy.objects.create(name="FINRA desk", days=2557, rule="FINRA 4511")
    policy.channels.add(channel)
    return policy


def test_every_new_seq_of_an_import_has_a_retention_record(
    channel: Channel, desk_policy: RetentionPolicy
) -> None:
    first = LedgerEntry.objects.count()
    job = import_chat(channel, ANDROID, mapping=CLIENT)
    assert job.state == ImportJob.State.DONE
    kept = set(RetentionRecord.objects.values_list("entry_id", flat=True))
    sealed = LedgerEntry.objects.filter(seq__gte=first).exclude(
        kind__in=["import.started", "import.finished"]
    )
    assert set(sealed.values_list("seq", flat=True)) <= kept
    for message in Message.objects.filter(source="phone_export"):
        record = RetentionRecord.objects.get(entry_id=message.entry_id)
        assert record.kind == "message.imported" and record.policy == desk_policy


def test_the_upload_is_kept_as_long_as_what_was_imported_from_it(
    channel: Channel, desk_policy: RetentionPolicy
) -> None:
    import_chat(channel, ANDROID)
    export = ChatExport.objects.get()
    longest = max(
        RetentionRecord.objects.filter(kind="message.imported").values_list(
            "retain_until", flat=True
        )
    )
    for seq in (export.entry_id, export.file.entry_id):
        assert RetentionRecord.objects.get(entry_id=seq).retain_until >= longest


def test_a_hold_by_participant_covers_imported_messages(channel: Channel) -> None:
    import_chat(channel, ANDROID, mapping=CLIENT)
    hold = holds.create(
        None,
        matter="Utrecht",
        reason="litigation",
        scope=holds.HoldScope.build(participants=["+31 6 1234 5678"]),
    )
    theirs = Message.objects.filter(sender__wa_id="31612345678")
    assert theirs.count() == 3
    held = set(HoldItem.message_seqs(hold).values_list("entry_id", flat=True))
    assert set(theirs.values_list("entry_id", flat=True)) <= held
    kinds = set(HoldItem.objects.filter(hold=hold).values_list("kind", flat=True))
    assert {"chat.export", "media.file", "participant"} <= kinds


def test_holds_by_conversation_and_by_search_cover_imported_messages(channel: Channel) -> None:
    job = import_chat(channel, ANDROID)  # nobody mapped: the chat's own conversation
    imported = Message.objects.filter(source="phone_export", conversation=job.conversation)
    by_conversation = holds.create(
        None,
        matter="Utrecht by chat",
        reason="litigation",
        scope=holds.HoldScope.build(conversations=[job.conversation_id]),
    )
    held = set(HoldItem.message_seqs(by_conversation).values_list("entry_id", flat=True))
    assert held == set(imported.values_list("entry_id", flat=True)) != set()
    by_search = holds.create(
        None,
        matter="Utrecht by search",
        reason="litigation",
        scope=holds.HoldScope.build(query={"q": "shiva"}),
    )
    (found,) = HoldItem.message_seqs(by_search).values_list("entry_id", flat=True)
    assert "shiva" in Message.objects.get(entry_id=found).text
