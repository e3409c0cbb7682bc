"""GDPR erasure requests: refused with the legal ground while retention or a hold applies,
carried out through disposition when neither does, and settled when the last record goes.

Python's clock (which `decide()` compares retain_until with) is frozen at PostgreSQL's now():
the database's clock cannot be travelled, so years passing are `expire()`/`extend()` instead.
"""

from collections.abc import Iterator

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from archive.models import LedgerEntry
from messaging.models import Delivery, Message, Participant, ParticipantProfile, StatusEvent
from retention import disposition, erasure
from retention.models import Disposition, ErasureRequest, RetentionRecord
from tests.retention.conftest import (
    NOW,
    Desks,
    db_now,
    expire,
    expire_all,
    hold,
    make_policy,
    reaction,
    reply,
    seal,
    statuses,
    text,
)

ANN, BEN = "447700900101", "447700900202"
ANN_TEXT, BEN_TEXT = "ann's private plans", "ben's private plans"
RULE = "FINRA 4511: 6 years"


@pytest.fixture
def frozen() -> Iterator[None]:
    """Python's clock at PostgreSQL's now() (for a `db` test, the transaction's)."""
    with time_machine.travel(db_now(), tick=False):
        yield


def erase(number: str) -> ErasureRequest:
    """Record a request now, by the database's clock (in a committed test, a new now())."""
    with time_machine.travel(db_now(), tick=False):
        return erasure.record(None, number, reference="DSAR-1")


def two_subjects() -> None:
    """Ann and Ben, five records each: message, webhook body, conversation, number, name."""
    seal(
        text(ANN, "Ann Hart", "wamid.ann", ANN_TEXT, NOW),
        text(BEN, "Ben Fox", "wamid.ben", BEN_TEXT, NOW),
    )


def subject_records(number: str) -> QuerySet[RetentionRecord]:
    return RetentionRecord.objects.filter(entry_id__in=erasure.subject_seqs(number))


def texts() -> set[str]:
    return set(Message.objects.values_list("text", flat=True)) - {""}


def bodies_with(secret: str) -> int:
    return sum(secret.encode() in bytes(d.body) for d in Delivery.objects.all())


def kinds(records: QuerySet[RetentionRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind in records.values_list("kind", flat=True):
        counts[kind] = counts.get(kind, 0) + 1
    return counts


# --- Refused, with the ground --------------------------------------------------------------


def test_it_refuses_while_retained_naming_the_rule_and_the_last_date(
    db: None, desks: Desks, frozen: None
) -> None:
    make_policy("Desk", 2192, [desks.desk], rule=RULE)
    two_subjects()
    last = max(subject_records(ANN).values_list("retain_until", flat=True))
    request = erasure.record(None, "+44 7700 900101", reference="DSAR-1")
    assert request.state == ErasureRequest.State.REFUSED
    assert "Art. 17(3)(b)" in request.legal_ground
    assert f"Desk: {RULE}" in request.legal_ground
    assert f"the last on {last:%Y-%m-%d}" in request.legal_ground
    assert (request.due_at, request.records, request.disposed) == (last, 5, 0)
    assert not Disposition.objects.exists()
    assert texts() == {ANN_TEXT, BEN_TEXT}


def test_it_seals_the_request_and_its_decision(db: None, desks: Desks, frozen: None) -> None:
    two_subjects()
    erasure.record(None, ANN)
    sealed = list(LedgerEntry.objects.filter(kind__startswith="gdpr.").values_list("kind"))
    assert sealed == [("gdpr.erasure_request",), ("gdpr.erasure_decision",)]


def test_it_refuses_while_held_naming_the_matter(committed: None, desks: Desks) -> None:
    two_subjects()
    hold("Hart v Bank", participants=[ANN])
    expire_all()
    request = erase(ANN)
    assert request.state == ErasureRequest.State.REFUSED
    assert "Art. 17(3)(e)" in request.legal_ground and "“Hart v Bank”" in request.legal_ground
    assert "17(3)(b)" not in request.legal_ground  # past retention: only the hold keeps them
    assert texts() == {ANN_TEXT, BEN_TEXT}  # Ann's held, Ben's not asked about


def test_it_names_both_grounds_while_both_apply(db: None, desks: Desks, frozen: None) -> None:
    make_policy("Desk", 2192, [desks.desk], rule=RULE)
    two_subjects()
    hold("Hart v Bank", participants=[ANN])
    request = erasure.record(None, ANN)
    assert "Art. 17(3)(b)" in request.legal_ground and RULE in request.legal_ground
    assert "Art. 17(3)(e)" in request.legal_ground and "“Hart v Bank”" in request.legal_ground
    assert erasure.held_items(ANN) == 5


def test_it_refuses_a_number_too_short_to_be_one(db: None) -> None:
    with pytest.raises(ValidationError, match="full WhatsApp number"):
        erasure.record(None, "12 34")
    assert not ErasureRequest.objects.exists()


# --- Carried out through disposition -------------------------------------------------------


def test_it_carries_out_erasure_through_disposition(committed: None, desks: Desks) -> None:
    two_subjects()
    expire_all()
    request = erase(ANN)
    done = Disposition.objects.get(erasure=request)
    assert (done.state, done.disposed) == (Disposition.State.DONE, 5)
    assert ANN_TEXT not in texts()
    assert not ParticipantProfile.objects.filter(name="Ann Hart").exists()
    assert not Participant.objects.filter(wa_id=ANN).exists()
    assert bodies_with(ANN_TEXT) == 0


def test_it_marks_a_carried_out_request_done(committed: None, desks: Desks) -> None:
    two_subjects()
    expire_all()
    request = erase(ANN)
    assert (request.state, request.records, request.disposed) == ("done", 5, 5)
    assert request.completed_at is not None and request.legal_ground == ""


def test_it_leaves_other_subjects_untouched(committed: None, desks: Desks) -> None:
    two_subjects()
    expire_all()
    ben_records = set(subject_records(BEN).values_list("entry_id", flat=True))
    erase(ANN)
    assert BEN_TEXT in texts()
    assert ParticipantProfile.objects.filter(name="Ben Fox").exists()
    gone = RetentionRecord.objects.filter(entry_id__in=ben_records, disposed_at__isnull=False)
    assert not gone.exists()
    assert bodies_with(BEN_TEXT) == 1


def test_it_carries_out_what_it_can_and_schedules_the_rest(committed: None, desks: Desks) -> None:
    seal(text(ANN, "Ann Hart", "wamid.old", "old plans", NOW))
    seal(text(ANN, "Ann Hart", "wamid.new", "new plans", NOW + 60))
    old = Message.objects.get(wamid="wamid.old")
    expire([old.entry_id])
    request = erase(ANN)
    assert request.state == ErasureRequest.State.PARTIAL and request.disposed == 1
    assert "Art. 17(3)(b)" in request.legal_ground
    assert texts() == {"new plans"}


def test_it_settles_a_refused_request_once_its_records_are_gone(
    committed: None, desks: Desks
) -> None:
    two_subjects()
    request = erase(ANN)
    assert request.state == ErasureRequest.State.REFUSED
    expire_all()
    with time_machine.travel(db_now(), tick=False):
        disposition.plan()  # the daily run settles the requests when it is done
    request.refresh_from_db()
    assert request.state == ErasureRequest.State.CARRIED_OUT
    assert request.completed_at is not None and request.disposed == 5


# --- What is about the subject -------------------------------------------------------------


def test_it_counts_what_comes_with_a_subjects_messages(db: None, desks: Desks) -> None:
    seal(
        text(ANN, "Ann Hart", "wamid.ann", ANN_TEXT, NOW),
        reply(ANN, "wamid.out", "noted", NOW + 10),
        statuses("wamid.out", ANN, NOW + 11),
    )
    assert kinds(subject_records(ANN)) == {
        "message": 2,
        "message.status": 3,
        "webhook.delivery": 3,
        "conversation": 1,
        "participant": 1,
        "participant.profile": 1,
    }


def test_it_leaves_out_others_who_reacted_in_the_subjects_group(db: None, desks: Desks) -> None:
    group = {"group_id": "120363000000000001"}
    seal(
        text(ANN, "Ann Hart", "wamid.ann", ANN_TEXT, NOW, extra=group),
        reaction(BEN, "Ben Fox", "wamid.ben-likes", "wamid.ann", NOW + 5, extra=group),
    )
    ben = Participant.objects.get(wa_id=BEN)
    bens = {ben.entry_id, *ben.profiles.values_list("entry_id", flat=True)}
    assert not bens & set(erasure.subject_seqs(ANN))


def test_it_erases_a_redelivered_webhook_body_too(committed: None, desks: Desks) -> None:
    body = text(ANN, "Ann Hart", "wamid.ann", ANN_TEXT, NOW)
    seal(body)
    seal(body)  # Meta delivers at least once
    expire_all()
    erase(ANN)
    assert bodies_with(ANN_TEXT) == 0


def test_it_erases_statuses_naming_the_subject(committed: None, desks: Desks) -> None:
    seal(text(ANN, "Ann Hart", "wamid.ann", ANN_TEXT, NOW))
    seal(statuses("wamid.sent-by-api", ANN, NOW + 5))
    expire_all()
    erase(ANN)
    assert not StatusEvent.objects.filter(recipient_id=ANN).exists()
