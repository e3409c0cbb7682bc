"""GDPR erasure requests (Art. 17): recorded, decided, and carried out by disposition.

What is about a subject: every message in their conversations or sent by them, with everything
that comes with those messages (retention/holds.py's COVERED: statuses, attachments, media,
webhook bodies, conversations, participants and names). Whatever of it is past retention and
unheld is disposed of at once, through the same database function as any disposition. The rest
is refused with the legal ground recorded: Art. 17(3)(b) while a retention duty applies (the
rules are named, and the date it ends), Art. 17(3)(e) while a legal hold applies. The daily
disposition removes it at expiry; the request is marked carried out when nothing is left.
"""

import re

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from archive import ledger
from archive.envelope import Fact
from messaging.models import Message

from . import disposition, holds
from .audit import actor
from .models import ErasureRequest, HoldItem, LegalHold, RetentionPolicy, RetentionRecord

_DIGITS = re.compile(r"\D")


def subject_messages(number: str) -> QuerySet[Message]:
    return Message.objects.filter(
        Q(conversation__participant__wa_id=number) | Q(sender__wa_id=number)
    )


def subject_seqs(number: str) -> list[int]:
    """The seqs of every entry about the subject (see the module's docstring)."""
    sql, params = holds.covered_sql(subject_messages(number), (number,), only_numbers=True)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT seq FROM ({sql}) AS c", params)  # noqa: S608
        return [seq for (seq,) in cursor.fetchall()]


def record(user: User | None, number: str, reference: str = "") -> ErasureRequest:
    """Record a request, dispose of what may go now, and state the ground for the rest.

    The request is sealed as received before anything is disposed of, and its decision after.
    """
    digits = _DIGITS.sub("", number)
    if len(digits) < 6:
        raise ValidationError("Give the subject's full WhatsApp number.")
    covered = subject_seqs(digits)
    with transaction.atomic():
        request = ErasureRequest.objects.create(
            number=digits,
            reference=reference.strip()[:200],
            recorded_by=user if user is not None and user.pk else None,
            state=ErasureRequest.State.NOTHING,
            covered=covered,
            records=len(covered),
        )
        ledger.append(
            [
                Fact(
                    "gdpr.erasure_request",
                    {"request": request.pk, "records": len(covered)},
                    {
                        "number": digits.encode(),
                        "reference": request.reference.encode(),
                        "user": actor(user),
                    },
                )
            ]
        )
    if covered:
        disposition.plan(user, erasure=request)
    decide(request)
    return request


def decide(request: ErasureRequest) -> ErasureRequest:
    """Work out the request's state and ground from what is left of its records; seal the
    decision when it changes."""
    before = (request.state, request.legal_ground, request.disposed)
    records = RetentionRecord.objects.filter(entry_id__in=request.covered)
    left = records.filter(disposed_at__isnull=True)
    request.records = len(request.covered)
    request.disposed = records.filter(disposed_at__isnull=False).count()
    grounds = []
    if left.exists():
        due_at = left.aggregate(last=Max("retain_until"))["last"]
        request.due_at = due_at
        policies = RetentionPolicy.objects.filter(
            pk__in=left.filter(retain_until__gt=timezone.now()).values("policy_id")
        )
        rules = "; ".join(f"{p.name}: {p.rule}" for p in policies)
        if rules:
            grounds.append(
                "GDPR Art. 17(3)(b): erasure is refused while a legal obligation to keep these "
                f"records applies ({rules}). They are scheduled for disposal when it ends, "
                f"the last on {due_at:%Y-%m-%d}."
            )
        matters = LegalHold.objects.filter(
            released_at__isnull=True,
            items__entry_id__in=left.values("entry_id"),
        ).distinct()
        if matters.exists():
            grounds.append(
                "GDPR Art. 17(3)(e): records are kept for the establishment, exercise or "
                "defence of legal claims under the legal hold(s) "
                + ", ".join(f"“{m.matter}”" for m in matters)
                + "; they are disposed of once released and past retention."
            )
        if not grounds:
            grounds.append("Past retention; waiting for the next disposition run or its approval.")
        request.state = (
            ErasureRequest.State.PARTIAL if request.disposed else ErasureRequest.State.REFUSED
        )
        request.completed_at = None
    else:
        request.due_at = None
        request.state = (
            ErasureRequest.State.CARRIED_OUT if request.records else ErasureRequest.State.NOTHING
        )
        request.completed_at = request.completed_at or timezone.now()
    request.legal_ground = "\n".join(grounds)
    with transaction.atomic():
        request.save()
        if (request.state, request.legal_ground, request.disposed) != before:
            ledger.append(
                [
                    Fact(
                        "gdpr.erasure_decision",
                        {
                            "request": request.pk,
                            "state": str(request.state),
                            "records": request.records,
                            "disposed": request.disposed,
                        },
                        {"legal_ground": request.legal_ground.encode()},
                    )
                ]
            )
    return request


def settle_after(sender: object, **kwargs: object) -> None:
    """Receiver of `disposition.finished` (connected in RetentionConfig.ready())."""
    settle_requests()


def settle_requests() -> int:
    """After a disposition: mark requests whose records are all gone as carried out."""
    settled = 0
    open_requests = ErasureRequest.objects.filter(
        state__in=[ErasureRequest.State.REFUSED, ErasureRequest.State.PARTIAL]
    )
    for request in open_requests:
        if decide(request).state == ErasureRequest.State.CARRIED_OUT:
            settled += 1
    return settled


def held_items(number: str) -> int:
    """How many entries about the subject an active legal hold covers now."""
    return HoldItem.objects.filter(
        entry_id__in=subject_seqs(number), hold__released_at__isnull=True
    ).count()
