"""retain_until is fixed when an entry is sealed: its channel's policy, and what depends on it."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from archive.models import LedgerEntry
from messaging.models import (
    Attachment,
    Conversation,
    DeliverySeal,
    MediaFile,
    Message,
    Participant,
    ParticipantProfile,
)
from retention import policies
from retention.assign import KINDS, Policy, lengthened
from retention.models import RetentionPolicy, RetentionRecord
from tests.retention.conftest import (
    NOW,
    OTHER,
    PNG,
    Desks,
    default_policy,
    envelope,
    image,
    make_policy,
    record,
    reply,
    seal,
    seq,
    statuses,
    store,
    text,
)

pytestmark = pytest.mark.django_db

ANN, BEN = "447700900101", "447700900202"
YEARS_AGO = NOW - 5 * 365 * 86_400


def until(entry_seq: int) -> datetime:
    return record(entry_seq).retain_until


def days_kept(entry_seq: int) -> float:
    kept = record(entry_seq)
    return (kept.retain_until - kept.sealed_at) / timedelta(days=1)


def dependents(wamid: str) -> dict[str, int]:
    """The seqs a message depends on: its conversation, people, names and webhook body."""
    message = Message.objects.get(wamid=wamid)
    person = Participant.objects.get(pk=message.conversation.participant_id)
    found = {
        "conversation": message.conversation.entry_id,
        "participant": person.entry_id,
        "delivery": DeliverySeal.objects.get(delivery_id=message.delivery_id).entry_id,
    }
    for n, profile in enumerate(ParticipantProfile.objects.filter(participant=person)):
        found[f"profile {n}"] = profile.entry_id
    return found


def kept_at_least_as_long(wamid: str) -> bool:
    message_until = until(seq(wamid))
    return all(until(s) >= message_until for s in dependents(wamid).values())


# --- At sealing ----------------------------------------------------------------------------


def test_it_gives_every_captured_kind_a_record_for_its_policys_days(db: None, desks: Desks) -> None:
    seal(
        text(ANN, "Ann", "wamid.hi", "hello", NOW),
        reply(ANN, "wamid.out", "hello back", NOW + 10),
        statuses("wamid.out", ANN, NOW + 11),
        image(ANN, "Ann", "wamid.img", "a scan", NOW + 20),
        envelope("account_update", {"event": "VERIFIED_ACCOUNT"}),
        text(BEN, "Ben", "wamid.lost", "to a channel we do not know", NOW, channel="999"),
    )
    store("wamid.img")
    captured = LedgerEntry.objects.filter(kind__in=KINDS.values())
    assert {e.kind for e in captured} == set(KINDS.values())
    days = default_policy().days
    for entry in captured:
        kept = record(entry.seq)
        assert (kept.kind, kept.sealed_at, kept.disposed_at) == (entry.kind, entry.sealed_at, None)
        assert kept.retain_until >= entry.sealed_at + timedelta(days=days)
        if entry.kind != "media.file":  # kept as long as the attachment sealed after it
            assert kept.retain_until == entry.sealed_at + timedelta(days=days), entry


def test_it_counts_from_sealing_not_from_when_a_message_says_it_was_sent(
    db: None, desks: Desks
) -> None:
    make_policy("Desk", 30, [desks.desk])
    seal(text(ANN, "Ann", "wamid.old", "imported from history", YEARS_AGO))
    assert days_kept(seq("wamid.old")) == 30


def test_it_applies_the_longest_policy_naming_a_channel(db: None, desks: Desks) -> None:
    make_policy("Short", 100, [desks.desk])
    long = make_policy("Long", 400, [desks.desk, desks.other])
    seal(text(ANN, "Ann", "wamid.hi", "hello"))
    assert days_kept(seq("wamid.hi")) == 400
    assert record(seq("wamid.hi")).policy_id == long.pk


def test_it_applies_the_default_to_a_channel_no_policy_names(db: None, desks: Desks) -> None:
    make_policy("Other desk", 100, [desks.other])
    seal(text(ANN, "Ann", "wamid.hi", "hello"))
    assert record(seq("wamid.hi")).policy_id == default_policy().pk
    assert days_kept(seq("wamid.hi")) == default_policy().days


# --- Dependents ----------------------------------------------------------------------------


def test_it_keeps_dependents_as_long_as_the_longest_message_in_one_batch(
    db: None, desks: Desks
) -> None:
    make_policy("Short", 100, [desks.desk])
    make_policy("Long", 400, [desks.other])
    seal(
        text(ANN, "Ann", "wamid.short", "on the short desk"),
        text(ANN, "Ann", "wamid.long", "on the long desk", channel=OTHER),
    )
    people = dependents("wamid.short")
    assert until(people["participant"]) == until(seq("wamid.long"))
    assert until(people["profile 0"]) == until(seq("wamid.long"))
    assert days_kept(people["conversation"]) == 100  # its own channel's conversation
    assert kept_at_least_as_long("wamid.short") and kept_at_least_as_long("wamid.long")


@pytest.mark.parametrize("first", ["short", "long"])
def test_it_keeps_dependents_as_long_as_the_longest_message_across_batches(
    db: None, desks: Desks, first: str
) -> None:
    make_policy("Short", 100, [desks.desk])
    make_policy("Long", 400, [desks.other])
    bodies = {
        "short": text(ANN, "Ann", "wamid.short", "on the short desk", NOW),
        "long": text(ANN, "Ann", "wamid.long", "on the long desk", NOW, channel=OTHER),
    }
    seal(bodies[first])
    seal(*(body for name, body in bodies.items() if name != first))
    longest = max(until(seq("wamid.short")), until(seq("wamid.long")))
    # sealed with the first message, exactly as long as it; lengthened by a later batch, to the
    # end of that day (assign.lengthened)
    expected = longest if first == "long" else lengthened(longest, Policy(0, 400))
    person = dependents("wamid.short")
    assert until(person["participant"]) == expected
    assert until(person["profile 0"]) == expected
    assert kept_at_least_as_long("wamid.short") and kept_at_least_as_long("wamid.long")


def test_it_keeps_a_name_shown_later_as_long_as_its_participant(db: None, desks: Desks) -> None:
    make_policy("Short", 100, [desks.desk])
    seal(reply(ANN, "wamid.out", "hello from the other desk", NOW, channel=OTHER))
    seal(text(ANN, "Ann", "wamid.in", "hi", NOW + 60))  # her name, first seen on the short desk
    participant = Participant.objects.get(wa_id=ANN)
    profile = ParticipantProfile.objects.get(participant=participant)
    assert until(participant.entry_id) >= until(seq("wamid.out"))
    assert until(profile.entry_id) >= until(participant.entry_id)


def test_it_keeps_a_conversation_as_long_as_its_last_message(db: None, desks: Desks) -> None:
    """Lengthened by a later batch, to the end of that day: the record is then left alone by
    every batch of the same day (no UPDATE: its row is where it was)."""
    make_policy("Desk", 100, [desks.desk])
    seal(text(ANN, "Ann", "wamid.1", "first", NOW))
    seal(text(ANN, "Ann", "wamid.2", "second", NOW + 60))
    conversation = Conversation.objects.get()
    last = until(seq("wamid.2"))
    assert last > until(seq("wamid.1"))
    assert until(conversation.entry_id) == lengthened(last, Policy(0, 100)) >= last
    version = row_version(conversation.entry_id)
    seal(text(ANN, "Ann", "wamid.3", "third", NOW + 120))
    if until(seq("wamid.3")) <= until(conversation.entry_id):  # not sealed past midnight
        assert row_version(conversation.entry_id) == version


def test_a_zero_day_policy_lengthens_exactly(db: None, desks: Desks) -> None:
    make_policy("Nothing kept", 0, [desks.desk])
    seal(text(ANN, "Ann", "wamid.1", "first", NOW))
    seal(text(ANN, "Ann", "wamid.2", "second", NOW + 60))
    assert until(Conversation.objects.get().entry_id) == until(seq("wamid.2"))


def row_version(entry_seq: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT ctid::text FROM retention_record WHERE seq = %s", [entry_seq])
        return str(cursor.fetchone()[0])


@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    days=st.integers(0, 4000),
)
def test_a_lengthened_record_is_kept_at_least_as_long_and_at_most_to_that_days_end(
    moment: datetime, days: int
) -> None:
    kept = lengthened(moment, Policy(1, days))
    if days == 0:
        assert kept == moment
        return
    assert moment <= kept < moment + timedelta(days=1)
    assert (kept.hour, kept.minute, kept.second, kept.microsecond) == (0, 0, 0, 0)


def test_it_keeps_a_webhook_body_as_long_as_the_statuses_it_carried(db: None, desks: Desks) -> None:
    make_policy("Desk", 100, [desks.desk])
    seal(reply(ANN, "wamid.out", "hello", NOW))
    seal(statuses("wamid.out", ANN, NOW + 1))
    (latest,) = DeliverySeal.objects.order_by("-entry_id")[:1]
    assert days_kept(latest.entry_id) == 100


# --- Media ---------------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["short", "long"])
def test_it_keeps_shared_media_as_long_as_the_longest_message(
    db: None, desks: Desks, first: str
) -> None:
    make_policy("Short", 100, [desks.desk])
    make_policy("Long", 400, [desks.other])
    seal(
        image(ANN, "Ann", "wamid.short", "a scan", NOW),
        image(BEN, "Ben", "wamid.long", "the same scan", NOW, channel=OTHER),
    )
    second = {"short": "wamid.long", "long": "wamid.short"}[first]
    shared = store(f"wamid.{first}", PNG)
    assert store(second, PNG) == shared
    attachments = {a.message.wamid: a.entry_id for a in Attachment.objects.all()}
    assert until(shared.entry_id) >= until(attachments["wamid.long"]) >= until(seq("wamid.long"))
    assert until(attachments["wamid.short"]) >= until(seq("wamid.short"))
    assert days_kept(attachments["wamid.short"]) == 100


def test_it_records_media_fetched_after_the_channel_moved_to_a_shorter_policy(
    db: None, desks: Desks
) -> None:
    seal(image(ANN, "Ann", "wamid.img", "a scan", NOW))  # under the 7-year default
    make_policy("Desk", 30, [desks.desk])
    store("wamid.img")
    attachment = Attachment.objects.get(message__wamid="wamid.img")
    assert until(attachment.entry_id) >= until(seq("wamid.img"))
    assert MediaFile.objects.count() == 1


# --- Policy changes ------------------------------------------------------------------------


def test_it_lengthens_what_a_lengthened_policy_sealed_and_their_dependents(
    db: None, desks: Desks
) -> None:
    policy = make_policy("Desk", 100, [desks.desk])
    seal(image(ANN, "Ann", "wamid.img", "a scan", NOW), text(BEN, "Ben", "wamid.hi", "hello"))
    media = store("wamid.img")
    policy.days = 500
    lengthened = policies.save(policy, None)
    assert days_kept(seq("wamid.img")) == days_kept(seq("wamid.hi")) == 500
    attachment = Attachment.objects.get()
    assert days_kept(attachment.entry_id) == 500
    assert until(media.entry_id) >= until(seq("wamid.img"))
    assert kept_at_least_as_long("wamid.img") and kept_at_least_as_long("wamid.hi")
    sealed_change = LedgerEntry.objects.filter(kind="retention.policy").order_by("-seq")[0]
    assert b'"days":500' in bytes(sealed_change.envelope)
    assert b'"previous_days":100' in bytes(sealed_change.envelope)
    assert f'"records_lengthened":{lengthened}'.encode() in bytes(sealed_change.envelope)
    assert lengthened >= 3  # the two messages and the attachment, then what they depend on


def test_it_lengthens_a_channels_records_when_a_longer_policy_names_it(
    db: None, desks: Desks
) -> None:
    seal(text(ANN, "Ann", "wamid.hi", "hello"))
    make_policy("Ten years", 3653, [desks.desk])
    assert days_kept(seq("wamid.hi")) == 3653
    assert kept_at_least_as_long("wamid.hi")


def test_it_never_shortens_sealed_records_when_a_policy_shortens(db: None, desks: Desks) -> None:
    policy = make_policy("Desk", 400, [desks.desk])
    seal(text(ANN, "Ann", "wamid.before", "hello"))
    before = {r.entry_id: r.retain_until for r in RetentionRecord.objects.all()}
    policy.days = 10
    assert policies.save(policy, None) == 0
    assert {r.entry_id: r.retain_until for r in RetentionRecord.objects.all()} == before
    seal(text(ANN, "Ann", "wamid.after", "again"))
    assert days_kept(seq("wamid.after")) == 10
    assert until(dependents("wamid.after")["participant"]) == before[seq("wamid.before")]


def test_it_lengthens_the_default_for_channels_no_policy_names(db: None, desks: Desks) -> None:
    make_policy("Other desk", 100, [desks.other])
    seal(
        text(ANN, "Ann", "wamid.desk", "hello"),
        text(BEN, "Ben", "wamid.other", "hello", channel=OTHER),
    )
    default = default_policy()
    default.days += 10
    policies.save(default, None)
    assert days_kept(seq("wamid.desk")) == default.days
    assert days_kept(seq("wamid.other")) == 100


def test_it_refuses_a_zero_day_policy_unless_confirmed(db: None, desks: Desks) -> None:
    with pytest.raises(ValidationError, match="0 days disposes of records at the next run"):
        policies.save(RetentionPolicy(name="Nothing", days=0, rule="none"), None, [desks.desk])
    assert not RetentionPolicy.objects.filter(name="Nothing").exists()
