"""Legal holds: what they cover, and how newly sealed messages join them.

A hold's scope resolves to messages (`HoldScope.messages()`); `refresh()` turns them into hold
items: each message, the reactions, edits and revocations that point at it, its statuses,
attachments and media files, the webhook deliveries that carried any of these (repeats
included), its conversation,
and the participants and names involved. `retention_dispose()` refuses anything with an item in
an active hold. Items are only ever added: a scope change adds what the new scope covers, and
releasing the hold (with a reason) is what ends it.

Refreshes run when a hold is created or changed, every 15 minutes, and at the start of every
disposition, which only considers entries sealed before the refresh began; so a message sealed
into a held conversation is never disposed of unheld, however short its retention.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from access import boundary
from archive import ledger
from archive.envelope import Fact
from messaging.models import Conversation, Message
from review import search

from . import object_lock
from .audit import actor
from .models import HoldItem, LegalHold

# Taken exclusively while a hold's items change, shared by retention_dispose() (the same number
# is in retention/migrations/0002_rules.py).
HOLD_LOCK = 0x436C5769_486F6C64  # "ClWiHold"
_DIGITS = re.compile(r"\D")


@dataclass(frozen=True)
class HoldScope:
    conversations: tuple[int, ...] = ()
    participants: tuple[str, ...] = ()  # WhatsApp numbers, digits only
    query: dict[str, str] = field(default_factory=dict)  # the search page's parameters
    date_from: date | None = None
    date_to: date | None = None

    def __post_init__(self) -> None:
        if not (
            self.conversations or self.participants or self.query or self.date_from or self.date_to
        ):
            raise ValidationError(
                "A hold needs a scope: conversations, participants, a search or a date range."
            )
        for number in self.participants:
            if len(number) < 6:
                raise ValidationError(f"“{number}” is not a full WhatsApp number.")
        boundary.check_date(self.date_from)
        boundary.check_date(self.date_to)
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValidationError("The end date is before the start date.")
        if self.query:
            form = search.SearchForm(self.query)
            if not form.is_valid():
                problems = "; ".join(
                    f"{k}: {' '.join(map(str, v))}" for k, v in form.errors.items()
                )
                raise ValidationError(f"The search cannot be held: {problems}")
        if self.conversations:
            known = set(
                Conversation.objects.filter(pk__in=self.conversations).values_list("pk", flat=True)
            )
            missing = sorted(set(self.conversations) - known)
            if missing:
                raise ValidationError(f"There is no conversation {missing[0]}.")

    @classmethod
    def build(
        cls,
        *,
        conversations: list[int] | tuple[int, ...] = (),
        participants: list[str] | tuple[str, ...] = (),
        query: dict[str, str] | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
    ) -> "HoldScope":
        numbers = sorted({_DIGITS.sub("", n) for n in participants if n.strip()})
        if "" in numbers:
            raise ValidationError("A participant is a WhatsApp number: digits, at least 6.")
        cleaned = {
            k: str(v) for k, v in (query or {}).items() if v not in ("", None) and k != "page"
        }
        return cls(
            tuple(sorted(set(conversations))),
            tuple(numbers),
            dict(sorted(cleaned.items())),
            date_from,
            date_to,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "HoldScope":
        return cls(
            tuple(data.get("conversations") or ()),
            tuple(data.get("participants") or ()),
            dict(data.get("query") or {}),
            date.fromisoformat(data["date_from"]) if data.get("date_from") else None,
            date.fromisoformat(data["date_to"]) if data.get("date_to") else None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.conversations:
            out["conversations"] = list(self.conversations)
        if self.participants:
            out["participants"] = list(self.participants)
        if self.query:
            out["query"] = dict(self.query)
        if self.date_from:
            out["date_from"] = self.date_from.isoformat()
        if self.date_to:
            out["date_to"] = self.date_to.isoformat()
        return out

    def label(self) -> str:
        parts = []
        if self.conversations:
            parts.append("conversations " + ", ".join(map(str, self.conversations)))
        if self.participants:
            parts.append("participants " + ", ".join(f"+{n}" for n in self.participants))
        if self.query:
            parts.append("search " + ", ".join(f"{k}={v}" for k, v in self.query.items()))
        if self.date_from or self.date_to:
            parts.append(f"sent {self.date_from or '…'} to {self.date_to or '…'}")
        return "; ".join(parts)

    def messages(self) -> QuerySet[Message]:
        """Every message in scope (annotations included: refresh() adds those of held ones)."""
        chosen = Q()
        if self.conversations or self.participants or self.query:
            chosen = Q(pk__in=[])
            if self.conversations:
                chosen |= Q(conversation_id__in=self.conversations)
            if self.participants:
                chosen |= Q(conversation__participant__wa_id__in=self.participants)
                chosen |= Q(sender__wa_id__in=self.participants)
            if self.query:
                form = search.SearchForm(self.query)
                form.is_valid()
                data = form.cleaned_data
                found, _ = search.matching(Message.objects.all(), data)
                chosen |= Q(pk__in=found.values("pk"))
        messages = Message.objects.filter(chosen)
        if self.date_from:
            messages = messages.filter(sent_at__gte=_day_start(self.date_from))
        if self.date_to:
            messages = messages.filter(sent_at__lt=_day_start(self.date_to + timedelta(days=1)))
        return messages


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


# What a set of messages brings with it: (seq, kind) of every entry disposition must also spare.
COVERED = """
WITH m AS MATERIALIZED ({messages}),
held AS MATERIALIZED (
    SELECT id, seq, channel_id, wamid, conversation_id, delivery_id, sender_id FROM m
    UNION
    SELECT a.id, a.seq, a.channel_id, a.wamid, a.conversation_id, a.delivery_id, a.sender_id
      FROM messaging_message a JOIN m ON a.channel_id = m.channel_id AND a.target_wamid = m.wamid
     WHERE a.target_wamid <> ''
),
people AS ({people}),
statuses AS (
    SELECT s.seq, s.delivery_id FROM messaging_statusevent s
      JOIN held ON s.channel_id = held.channel_id AND s.wamid = held.wamid
    UNION
    SELECT s.seq, s.delivery_id FROM messaging_statusevent s
     WHERE s.recipient_id = ANY(%s::text[])
)
SELECT DISTINCT seq, kind FROM (
    SELECT seq, 'message' FROM held
    UNION ALL SELECT c.seq, 'conversation' FROM messaging_conversation c
     WHERE c.id IN (SELECT conversation_id FROM held)
    UNION ALL SELECT p.seq, 'participant' FROM messaging_participant p
     WHERE p.id IN (SELECT id FROM people)
    UNION ALL SELECT pp.seq, 'participant.profile' FROM messaging_participantprofile pp
     WHERE pp.participant_id IN (SELECT id FROM people)
    UNION ALL SELECT seq, 'message.status' FROM statuses
    UNION ALL SELECT d.seq, 'webhook.delivery' FROM messaging_deliveryseal d
     WHERE d.delivery_id IN (
         SELECT delivery_id FROM held
         UNION SELECT delivery_id FROM statuses
         UNION SELECT r.delivery_id FROM messaging_duplicateitem r
           JOIN held ON r.channel_id = held.channel_id AND r.wamid = held.wamid)
    UNION ALL SELECT a.seq, 'message.attachment' FROM messaging_attachment a
     WHERE a.message_id IN (SELECT id FROM held)
    UNION ALL SELECT f.seq, 'media.file' FROM messaging_mediafile f
      JOIN messaging_attachment a ON a.file_id = f.id
     WHERE a.message_id IN (SELECT id FROM held)
    -- imports/: each export's view of a held message (a created one shares the message's seq,
    -- held as 'message'), the uploaded export it came from and the upload's bytes
    UNION ALL SELECT i.seq, 'message.imported' FROM messaging_importedmessage i
     WHERE i.message_id IN (SELECT id FROM held) AND NOT i.created
    UNION ALL SELECT x.seq, 'chat.export' FROM messaging_chatexport x
     WHERE x.id IN (SELECT i.export_id FROM messaging_importedmessage i
                     WHERE i.message_id IN (SELECT id FROM held))
    UNION ALL SELECT f.seq, 'media.file' FROM messaging_mediafile f
      JOIN messaging_chatexport x ON x.file_id = f.id
     WHERE x.id IN (SELECT i.export_id FROM messaging_importedmessage i
                     WHERE i.message_id IN (SELECT id FROM held))
    -- bridge/: a message sent for staff comes with its sealed request and the reply email it
    -- came from; sends that failed and replies that were refused in a held conversation are
    -- communications too, and are held with it
    UNION ALL SELECT o.send_seq, 'message.send' FROM bridge_outbound o
     WHERE o.message_id IN (SELECT id FROM held)
        OR (o.message_id IS NULL AND o.conversation_id IN (SELECT conversation_id FROM held))
    UNION ALL SELECT o.result_seq, 'message.send_failed' FROM bridge_outbound o
     WHERE o.message_id IS NULL AND o.result_seq IS NOT NULL
       AND o.conversation_id IN (SELECT conversation_id FROM held)
    UNION ALL SELECT e.seq, 'email.inbound' FROM bridge_inboundemail e
     WHERE e.seq IS NOT NULL AND (
           e.id IN (SELECT o.email_id FROM bridge_outbound o
                     WHERE o.message_id IN (SELECT id FROM held))
        OR (e.conversation_id IN (SELECT conversation_id FROM held) AND e.state <> 'sent'))
) AS covered(seq, kind)
"""


# Everyone the messages concern: a hold keeps them all (the context of a matter).
EVERYONE = """
    SELECT sender_id AS id FROM held WHERE sender_id IS NOT NULL
    UNION
    SELECT c.participant_id FROM messaging_conversation c
     WHERE c.id IN (SELECT conversation_id FROM held) AND c.participant_id IS NOT NULL
"""
# Only the people with these numbers: an erasure request is about its subject, not about
# whoever reacted to them in a group.
ONLY_NUMBERS = """
    SELECT p.id FROM messaging_participant p WHERE p.wa_id = ANY(%s::text[])
"""


def covered_sql(
    messages: QuerySet[Message], numbers: tuple[str, ...] = (), *, only_numbers: bool = False
) -> tuple[str, list[Any]]:
    """SQL for the (seq, kind) of `messages` and everything that comes with them, plus the
    statuses of messages sent to `numbers` (also those the archive never captured as sent).
    With `only_numbers`, the participants covered are those with `numbers` alone."""
    columns = messages.values(
        "id", "entry_id", "channel_id", "wamid", "conversation_id", "delivery_id", "sender_id"
    )
    inner, params = columns.query.get_compiler(using=messages.db).as_sql()
    names = "id, seq, channel_id, wamid, conversation_id, delivery_id, sender_id"
    inner = f"SELECT {names} FROM ({inner}) AS q({names})"  # noqa: S608 (our own columns)
    people = ONLY_NUMBERS if only_numbers else EVERYONE
    sql = COVERED.format(messages=inner, people=people)
    # placeholders in the order they appear: the messages', the people's, the statuses'
    return sql, [*params, *([list(numbers)] if only_numbers else []), list(numbers)]


def refresh(hold: LegalHold) -> int:
    """Add what the hold's scope now covers; return how many items were added."""
    if not hold.active:
        return 0
    scope = HoldScope.from_json(hold.scope)
    sql, params = covered_sql(scope.messages())  # statuses follow the held messages
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [HOLD_LOCK])
        cursor.execute(
            "INSERT INTO retention_holditem (hold_id, seq, kind) "  # noqa: S608
            f"SELECT %s, seq, kind FROM ({sql}) AS c ON CONFLICT DO NOTHING",
            [hold.pk, *params],
        )
        added = int(cursor.rowcount)
        LegalHold.objects.filter(pk=hold.pk).update(refreshed_at=timezone.now())
    return added


def refresh_active() -> int:
    return sum(refresh(hold) for hold in LegalHold.objects.filter(released_at__isnull=True))


def _seal(kind: str, hold: LegalHold, user: User | None, **extra: str) -> None:
    contents = {
        "matter": hold.matter.encode(),
        "matter_number": hold.matter_number.encode(),
        "reason": hold.reason.encode(),
        "custodians": hold.custodians.encode(),
        "scope": json.dumps(hold.scope, sort_keys=True, ensure_ascii=False).encode(),
        "user": actor(user),
    }
    contents.update({k: v.encode() for k, v in extra.items()})
    ledger.append([Fact(kind, {"hold": hold.pk}, contents)])


def create(
    user: User | None,
    *,
    matter: str,
    reason: str,
    scope: HoldScope,
    matter_number: str = "",
    custodians: str = "",
) -> LegalHold:
    if not matter.strip() or not reason.strip():
        raise ValidationError("A hold needs a matter name and a reason.")
    if len(matter.strip()) > 200 or len(matter_number.strip()) > 100:
        raise ValidationError("A matter name has at most 200 characters, its number 100.")
    if LegalHold.objects.filter(matter=matter.strip()).exists():
        raise ValidationError(f"There is already a hold for the matter “{matter.strip()}”.")
    try:
        with transaction.atomic():
            hold = LegalHold.objects.create(
                matter=matter.strip(),
                matter_number=matter_number.strip(),
                reason=reason.strip(),
                custodians=custodians.strip(),
                scope=scope.to_json(),
                created_by=user if user and user.pk else None,
            )
            _seal("legal_hold.created", hold, user)
            refresh(hold)
            object_lock.wake()  # the bucket's legal holds on what it now covers
    except IntegrityError as exc:  # the same matter, created at the same moment
        raise ValidationError(
            f"There is already a hold for the matter “{matter.strip()}”."
        ) from exc
    return hold


def change(
    hold: LegalHold,
    user: User | None,
    *,
    reason: str,
    scope: HoldScope | None = None,
    custodians: str | None = None,
    matter_number: str | None = None,
) -> LegalHold:
    """Change a hold's details or widen its scope (what it already covers stays covered)."""
    if not hold.active:
        raise ValidationError("A released hold cannot be changed.")
    if not reason.strip():
        raise ValidationError("Say why the hold changes.")
    with transaction.atomic():
        if scope is not None:
            hold.scope = scope.to_json()
        if custodians is not None:
            hold.custodians = custodians.strip()
        if matter_number is not None:
            hold.matter_number = matter_number.strip()
        hold.save()
        _seal("legal_hold.changed", hold, user, change_reason=reason.strip())
        refresh(hold)
        object_lock.wake()
    return hold


def release(hold: LegalHold, user: User | None, reason: str) -> LegalHold:
    if not reason.strip():
        raise ValidationError("Releasing a hold needs a reason.")
    with transaction.atomic():
        locked = LegalHold.objects.select_for_update().get(pk=hold.pk)
        if not locked.active:
            raise ValidationError("This hold has already been released.")
        locked.released_at = timezone.now()
        locked.released_by = user if user and user.pk else None
        locked.release_reason = reason.strip()
        locked.save()
        _seal("legal_hold.released", locked, user, release_reason=locked.release_reason)
        object_lock.wake()  # the bucket's legal holds come off what nothing else holds
    return locked


def message_counts(holds: list[LegalHold] | QuerySet[LegalHold]) -> dict[int, int]:
    """hold id → how many messages it covers."""
    rows = (
        HoldItem.objects.filter(hold__in=holds, kind="message")
        .values("hold")
        .annotate(n=Count("entry"))
        .values_list("hold", "n")
    )
    return dict(rows)


def held_messages(hold: LegalHold) -> QuerySet[Message]:
    """The messages a hold covers (an export scope of its matter)."""
    return Message.objects.filter(entry_id__in=HoldItem.message_seqs(hold))
