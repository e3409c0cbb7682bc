"""Legal holds: what a scope covers, what comes with each held message, and the sealed trail."""

import importlib
from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection

from archive.models import LedgerEntry
from messaging.models import (
    Attachment,
    Conversation,
    DeliverySeal,
    Message,
    Participant,
    ParticipantProfile,
    StatusEvent,
)
from retention import disposition, holds
from retention.models import HoldItem, RetentionRecord
from tests.retention.conftest import (
    NOW,
    Desks,
    dispose,
    edit,
    expire_all,
    held_seqs,
    hold,
    image,
    make_policy,
    reaction,
    record,
    reply,
    seal,
    seq,
    statuses,
    store,
    text,
)

ANN, BEN, CAT = "447700900101", "447700900202", "447700900303"
DAY = 86_400
TODAY = date(2026, 9, 21)  # the day of NOW


def sealed_world() -> None:
    """Ann and Ben each in their own conversation, two messages a day apart."""
    seal(
        text(ANN, "Ann", "wamid.ann-1", "the zebra portfolio", NOW - DAY),
        text(ANN, "Ann", "wamid.ann-2", "thanks", NOW),
        text(BEN, "Ben", "wamid.ben-1", "a zebra crossing", NOW - DAY),
        text(BEN, "Ben", "wamid.ben-2", "see you", NOW),
    )


def held_wamids(legal_hold) -> set[str]:
    return set(holds.held_messages(legal_hold).values_list("wamid", flat=True))


def entry_seqs(*querysets) -> set[int]:
    return {seq for qs in querysets for seq in qs.values_list("entry_id", flat=True)}


def seals_of(*wamids: str) -> set[int]:
    deliveries = Message.objects.filter(wamid__in=wamids).values("delivery_id")
    return entry_seqs(DeliverySeal.objects.filter(delivery_id__in=deliveries))


def people(*numbers: str) -> set[int]:
    found = Participant.objects.filter(wa_id__in=numbers)
    return entry_seqs(found, ParticipantProfile.objects.filter(participant__in=found))


# --- Scopes --------------------------------------------------------------------------------


def test_it_holds_a_conversation(db: None, desks: Desks) -> None:
    sealed_world()
    ann = Conversation.objects.get(participant__wa_id=ANN)
    assert held_wamids(hold(conversations=[ann.pk])) == {"wamid.ann-1", "wamid.ann-2"}


def test_it_holds_a_participant_in_their_conversations_and_groups(db: None, desks: Desks) -> None:
    sealed_world()
    group = {"group_id": "120363000000000001"}
    seal(
        text(ANN, "Ann", "wamid.g-ann", "in the group", NOW, extra=group),
        text(CAT, "Cat", "wamid.g-cat", "me too", NOW, extra=group),
    )
    held = hold(participants=["+44 7700 900101"])
    assert held_wamids(held) == {"wamid.ann-1", "wamid.ann-2", "wamid.g-ann"}
    assert held.scope == {"participants": [ANN]}


def test_it_holds_what_a_search_finds(db: None, desks: Desks) -> None:
    sealed_world()
    assert held_wamids(hold(query={"q": "zebra"})) == {"wamid.ann-1", "wamid.ben-1"}


@pytest.mark.parametrize(
    ("date_from", "date_to", "expected"),
    [
        (TODAY, TODAY, {"wamid.ann-2", "wamid.ben-2"}),
        (None, TODAY - timedelta(days=1), {"wamid.ann-1", "wamid.ben-1"}),
        (
            TODAY - timedelta(days=1),
            None,
            {"wamid.ann-1", "wamid.ann-2", "wamid.ben-1", "wamid.ben-2"},
        ),
        (TODAY + timedelta(days=1), None, set()),
    ],
)
def test_it_holds_a_date_range_by_the_day_messages_were_sent(
    db: None, desks: Desks, date_from, date_to, expected
) -> None:
    sealed_world()
    assert held_wamids(hold(date_from=date_from, date_to=date_to)) == expected


def test_it_narrows_conversations_and_searches_by_the_dates(db: None, desks: Desks) -> None:
    sealed_world()
    ann = Conversation.objects.get(participant__wa_id=ANN)
    held = hold(conversations=[ann.pk], query={"q": "zebra"}, date_from=TODAY)
    assert held_wamids(held) == {"wamid.ann-2"}


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({}, "A hold needs a scope"),
        ({"participants": ["12345"]}, "“12345” is not a full WhatsApp number"),
        ({"date_from": TODAY, "date_to": TODAY - timedelta(days=1)}, "end date is before"),
        ({"query": {"q": "x", "date_from": "not a date"}}, "The search cannot be held: date_from"),
        ({"conversations": [987654]}, "There is no conversation 987654"),
    ],
)
def test_it_refuses_an_invalid_scope_saying_why(db: None, scope, message) -> None:
    with pytest.raises(ValidationError, match=message):
        holds.HoldScope.build(**scope)


def test_it_refuses_a_hold_without_a_matter_or_reason_or_twice(db: None, desks: Desks) -> None:
    scope = holds.HoldScope.build(date_from=TODAY)
    with pytest.raises(ValidationError, match="needs a matter name and a reason"):
        holds.create(None, matter="Smith", reason=" ", scope=scope)
    hold("Smith", date_from=TODAY)
    with pytest.raises(ValidationError, match="already a hold for the matter “Smith”"):
        holds.create(None, matter=" Smith ", reason="again", scope=scope)


# --- What comes with a held message --------------------------------------------------------


def test_it_holds_a_messages_edits_with_it_and_its_conversation_and_people(
    db: None, desks: Desks
) -> None:
    seal(
        text(ANN, "Ann", "wamid.typo", "wire the zebra money tomorow", NOW),
        edit(ANN, "Ann Hart", "wamid.fix", "wamid.typo", "wire it tomorrow", NOW + 60),
        text(ANN, "Ann Hart", "wamid.else", "unrelated", NOW + 120),
    )
    held = hold(query={"q": "zebra"})
    conversation = Conversation.objects.filter(participant__wa_id=ANN)
    expected = (
        entry_seqs(Message.objects.filter(wamid__in=["wamid.typo", "wamid.fix"]), conversation)
        | seals_of("wamid.typo", "wamid.fix")
        | people(ANN)
    )
    assert len(people(ANN)) == 3  # the number and both names Ann has shown
    assert held_seqs(held) == expected


def test_it_holds_a_replys_statuses_reactions_and_their_webhook_bodies(
    db: None, desks: Desks
) -> None:
    seal(
        text(ANN, "Ann", "wamid.ask", "a question", NOW),
        reply(ANN, "wamid.answer", "the zebra answer", NOW + 10),
        statuses("wamid.answer", ANN, NOW + 11),
        reaction(ANN, "Ann", "wamid.thumb", "wamid.answer", NOW + 20),
    )
    held = hold(query={"q": "zebra"})
    status_seals = entry_seqs(
        DeliverySeal.objects.filter(delivery_id__in=StatusEvent.objects.values("delivery_id"))
    )
    expected = (
        entry_seqs(
            Message.objects.filter(wamid__in=["wamid.answer", "wamid.thumb"]),
            StatusEvent.objects.filter(wamid="wamid.answer"),
            Conversation.objects.all(),
        )
        | seals_of("wamid.answer", "wamid.thumb")
        | status_seals
        | people(ANN)
    )
    assert StatusEvent.objects.count() == 3
    assert held_seqs(held) == expected
    assert seq_kinds(held)["message.status"] == 3


def seq_kinds(legal_hold) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind in HoldItem.objects.filter(hold=legal_hold).values_list("kind", flat=True):
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def test_it_holds_an_attachment_and_its_media_file(db: None, desks: Desks) -> None:
    seal(image(ANN, "Ann", "wamid.img", "zebra passport scan", NOW))
    media = store("wamid.img")
    held = hold(query={"q": "zebra"})
    attachment = Attachment.objects.get(message__wamid="wamid.img")
    assert {attachment.entry_id, media.entry_id} <= held_seqs(held)
    assert seq_kinds(held) == {
        "message": 1,
        "message.attachment": 1,
        "media.file": 1,
        "webhook.delivery": 1,
        "conversation": 1,
        "participant": 1,
        "participant.profile": 1,
    }


def test_it_adds_messages_sealed_later_into_the_scope_on_refresh(db: None, desks: Desks) -> None:
    sealed_world()
    ann = Conversation.objects.get(participant__wa_id=ANN)
    held = hold(conversations=[ann.pk])
    seal(text(ANN, "Ann", "wamid.ann-3", "one more", NOW + DAY))
    assert "wamid.ann-3" not in held_wamids(held)
    assert holds.refresh_active() == 2  # the message and the webhook body that carried it
    assert "wamid.ann-3" in held_wamids(held)
    assert holds.refresh_active() == 0


def test_it_keeps_what_a_hold_covered_when_its_scope_changes(db: None, desks: Desks) -> None:
    sealed_world()
    ann, ben = Conversation.objects.order_by("pk")
    held = hold(conversations=[ann.pk])
    holds.change(
        held,
        None,
        reason="Ben is a custodian too",
        scope=holds.HoldScope.build(conversations=[ben.pk]),
    )
    assert held_wamids(held) == {"wamid.ann-1", "wamid.ann-2", "wamid.ben-1", "wamid.ben-2"}
    assert holds.message_counts([held]) == {held.pk: 4}


# --- Release, and the sealed trail ---------------------------------------------------------


def test_it_needs_a_reason_to_release_and_releases_once(db: None, desks: Desks) -> None:
    held = hold(date_from=TODAY)
    with pytest.raises(ValidationError, match="Releasing a hold needs a reason"):
        holds.release(held, None, "  ")
    released = holds.release(held, None, "Settled")
    assert not released.active and released.release_reason == "Settled"
    with pytest.raises(ValidationError, match="already been released"):
        holds.release(held, None, "again")
    with pytest.raises(ValidationError, match="A released hold cannot be changed"):
        holds.change(released, None, reason="widen")


def test_it_needs_a_reason_to_change_a_hold(db: None, desks: Desks) -> None:
    with pytest.raises(ValidationError, match="Say why the hold changes"):
        holds.change(hold(date_from=TODAY), None, reason="")


def contents(entry: LedgerEntry) -> dict[str, bytes]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, content FROM archive_content WHERE seq = %s", [entry.seq])
        return {name: bytes(content) for name, content in cursor.fetchall()}


def test_it_seals_creation_changes_and_release_in_the_ledger(db: None, desks: Desks) -> None:
    held = hold("Doe v Bank", date_from=TODAY)
    holds.change(held, None, reason="Custodians named", custodians="Ann Adviser")
    holds.release(held, None, "Case closed")
    entries = list(LedgerEntry.objects.filter(kind__startswith="legal_hold."))
    assert [e.kind for e in entries] == [
        "legal_hold.created",
        "legal_hold.changed",
        "legal_hold.released",
    ]
    created, changed, released = map(contents, entries)
    assert created["matter"] == b"Doe v Bank" and created["scope"] == b'{"date_from": "2026-09-21"}'
    assert created["user"] == b"system"
    assert (changed["change_reason"], changed["custodians"]) == (
        b"Custodians named",
        b"Ann Adviser",
    )
    assert released["release_reason"] == b"Case closed"


def test_it_shares_its_lock_with_the_database_function() -> None:
    rules = importlib.import_module("retention.migrations.0002_rules")
    assert rules.HOLD_LOCK == holds.HOLD_LOCK
    assert str(holds.HOLD_LOCK) in rules.DISPOSE


# --- Holds against disposition (committed: PostgreSQL's now() must move on) ---------------


def test_it_stops_protecting_once_released(committed: None, desks: Desks) -> None:
    sealed_world()
    ann = Conversation.objects.get(participant__wa_id=ANN)
    held = hold(conversations=[ann.pk])
    expire_all()
    done = disposition.plan()
    assert done is not None and done.state == "done"
    assert set(Message.objects.exclude(text="").values_list("wamid", flat=True)) == {
        "wamid.ann-1",
        "wamid.ann-2",
    }
    holds.release(held, None, "Settled")
    assert disposition.plan().state == "done"
    assert not Message.objects.exclude(text="").exists()


def test_it_never_disposes_of_a_message_sealed_into_a_held_scope_unheld(
    committed: None, desks: Desks
) -> None:
    """However short its retention: the plan refreshes the holds before it counts."""
    make_policy("Nothing", 0, [desks.desk])
    sealed_world()
    ann = Conversation.objects.get(participant__wa_id=ANN)
    hold(conversations=[ann.pk])
    seal(text(ANN, "Ann", "wamid.ann-3", "sealed after the hold", NOW + DAY))
    ben = Message.objects.get(wamid="wamid.ben-1")
    disposition.plan()
    assert Message.objects.get(wamid="wamid.ann-3").text == "sealed after the hold"
    assert Message.objects.get(pk=ben.pk).text == ""  # unheld, 0 days: gone


def test_it_refuses_to_dispose_of_any_item_of_an_active_hold(committed: None, desks: Desks) -> None:
    seal(image(ANN, "Ann", "wamid.img", "zebra passport scan", NOW))
    store("wamid.img")
    held = hold(query={"q": "zebra"})
    expire_all()
    for item in held_seqs(held):
        with pytest.raises(IntegrityError, match="under the legal hold 'Matter 1'"):
            dispose([item])
        assert record(item).disposed_at is None
    assert held_seqs(held) == set(RetentionRecord.objects.values_list("entry_id", flat=True))


def test_it_holds_a_webhook_body_that_repeated_a_held_message(db: None, desks: Desks) -> None:
    body = text(ANN, "Ann", "wamid.repeated", "the zebra answer", NOW)
    seal(body)
    seal(body)  # Meta delivers at least once: the repeat is counted, and linked
    repeat = DeliverySeal.objects.order_by("-entry_id").first()
    assert repeat is not None and repeat.duplicates == 1
    held = hold(query={"q": "zebra"})
    assert repeat.entry_id in held_seqs(held)
    kept = RetentionRecord.objects.get(entry_id=repeat.entry_id).retain_until
    assert kept >= RetentionRecord.objects.get(entry_id=seq("wamid.repeated")).retain_until
