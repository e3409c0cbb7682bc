"""The review queue's writes: raise, claim, decide, escalate, comment.

Every decision and comment is sealed in the ledger in the same transaction as its row: the
envelope names the flag, the outcome and the deciding user's id, and commits to the reason and
the user's name, so the evidence of supervision (who, when, what, why) is tamper-evident.
"""

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from archive import ledger
from archive.envelope import Fact
from messaging.models import Conversation, Message
from review.models import Flag, FlagComment, ReviewDecision

Outcome = ReviewDecision.Outcome


def raise_flag(
    user: AbstractBaseUser, conversation: Conversation, message: Message | None, note: str
) -> Flag:
    note = note.strip()
    if not note:
        raise ValidationError("Say why this needs review.")
    return Flag.objects.create(
        conversation=conversation,
        message=message,
        source=Flag.Source.MANUAL,
        note=note,
        raised_by_id=user.pk,
    )


def claim(flag: Flag, user: AbstractBaseUser) -> bool:
    """Take an open flag nobody holds (or one escalated to you); False when someone else has it,
    or when you raised it (somebody else decides it)."""
    taken = (
        Flag.objects.filter(
            pk=flag.pk, state__in=[Flag.State.OPEN, Flag.State.ESCALATED], assignee__isnull=True
        )
        .exclude(raised_by_id=user.pk)
        .update(assignee=user.pk)
        == 1
    )
    flag.refresh_from_db(fields=["assignee", "state"])
    return taken or flag.assignee_id == user.pk


def not_yours(flag: Flag, user: AbstractBaseUser) -> str:
    """Why `user` may not decide `flag` ("" when they may): supervision means a second pair of
    eyes, so nobody decides a flag they raised, and a claimed (or escalated) flag is decided by
    whoever holds it. An unclaimed flag is claimed by deciding it."""
    if flag.raised_by_id is not None and flag.raised_by_id == user.pk:
        return f"You raised flag {flag.pk}: somebody else decides it."
    if flag.assignee_id is not None and flag.assignee_id != user.pk:
        return f"Flag {flag.pk} is held by {flag.assignee}: only they can decide it."
    return ""


def decide(
    flags: Sequence[Flag],
    user: AbstractBaseUser,
    outcome: str,
    reason: str,
    escalate_to: AbstractBaseUser | None = None,
) -> list[ReviewDecision]:
    """Decide one flag or many at once (a bulk decision is one decision per flag)."""
    reason = reason.strip()
    if outcome not in Outcome.values:
        raise ValidationError(f"Unknown outcome {outcome!r}.")
    if outcome == Outcome.NOT_COMPLIANT and not reason:
        raise ValidationError("A reason is required when a message is not compliant.")
    if outcome == Outcome.ESCALATED and escalate_to is None:
        raise ValidationError("Name the person to escalate to.")
    if outcome == Outcome.ESCALATED and escalate_to is not None and escalate_to.pk == user.pk:
        raise ValidationError("Escalate to somebody else.")
    with transaction.atomic():
        locked = list(Flag.objects.select_for_update().filter(pk__in=[f.pk for f in flags]))
        closed = [f for f in locked if not f.is_open]
        if closed:
            raise ValidationError(f"Flag {closed[0].pk} is already decided.")
        refusals = [why for f in locked if (why := not_yours(f, user))]
        if refusals:
            raise PermissionDenied(refusals[0])
        if escalate_to is not None and any(f.raised_by_id == escalate_to.pk for f in locked):
            raise ValidationError("Escalate to somebody other than who raised the flag.")
        now = timezone.now()
        escalated_to = escalate_to.pk if escalate_to is not None else None
        facts = [_decision_fact(f, user, outcome, reason, escalated_to, now) for f in locked]
        decisions = [
            ReviewDecision(
                flag=f,
                outcome=outcome,
                reason=reason,
                decided_by_id=user.pk,
                escalated_to_id=escalated_to,
                decided_at=now,
                entry=entry,
            )
            for f, entry in zip(locked, ledger.append(facts), strict=True)
        ]
        ReviewDecision.objects.bulk_create(decisions)
        for f in locked:
            f.state = outcome
            f.decided_at = None if outcome == Outcome.ESCALATED else now
            f.assignee_id = escalated_to if outcome == Outcome.ESCALATED else f.assignee_id
            f.save(update_fields=["state", "decided_at", "assignee"])
    return decisions


def _decision_fact(
    flag: Flag,
    user: AbstractBaseUser,
    outcome: str,
    reason: str,
    escalated_to: int | None,
    when: object,
) -> Fact:
    return Fact(
        "review.decision",
        {
            "flag": flag.pk,
            "conversation": flag.conversation_id,
            "message": flag.message_id,
            "message_seq": _message_seq(flag),
            "source": str(flag.source),
            "outcome": str(outcome),
            "decided_by": user.pk,
            "escalated_to": escalated_to,
        },
        {"reason": reason.encode(), "decided_by_name": user.get_username().encode()},
    )


def _message_seq(flag: Flag) -> int | None:
    """The ledger entry of the message decided on, so the decision points into the chain."""
    if flag.message_id is None:
        return None
    return Message.objects.filter(pk=flag.message_id).values_list("entry_id", flat=True).first()


def comment(flag: Flag, user: AbstractBaseUser, text: str) -> FlagComment:
    text = text.strip()
    if not text:
        raise ValidationError("A comment needs some text.")
    with transaction.atomic():
        (entry,) = ledger.append(
            [
                Fact(
                    "review.comment",
                    {"flag": flag.pk, "author": user.pk},
                    {"text": text.encode(), "author_name": user.get_username().encode()},
                )
            ]
        )
        return FlagComment.objects.create(
            flag=flag, author_id=user.pk, text=text, created_at=entry.sealed_at, entry=entry
        )
