"""Changing a retention policy: sealed, audited, and never shortening what is already sealed.

A change applies to records sealed from then on. A longer period (or a channel newly named by a
policy longer than its current one) also lengthens the records already sealed under it, and what
they depend on (conversations, participants and names, webhook bodies, attachments and media);
the extension is itself sealed. A shorter period never reaches back: PostgreSQL refuses to
shorten a record's retention (retention/migrations/0002_rules.py).
"""

import json
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from archive import ledger
from archive.envelope import Fact
from messaging.models import Channel

from .audit import actor
from .models import MAX_DAYS, RetentionPolicy

# Kinds whose retention follows their own channel's policy (the rest follow these).
OWN_KINDS = [
    "message",
    "message.imported",  # imports/: entries of phone chat exports
    "message.status",
    "account.event",
    "item.unparsed",
    "message.attachment",
    # bridge/: reply emails, send requests and refused sends
    "email.inbound",
    "message.send",
    "message.send_failed",
]
ZERO_DAY_WARNING = (
    "A period of 0 days disposes of records at the next run. Use it only for channels no rule "
    "requires you to keep."
)

EXTEND_OWN = """
UPDATE retention_record r
   SET retain_until = r.sealed_at + %(days)s * interval '86400 seconds', policy_id = %(policy)s
 WHERE r.disposed_at IS NULL
   AND (r.policy_id = %(policy)s
        OR (r.kind = ANY(%(kinds)s)
            AND (r.channel_id = ANY(%(channels)s)
                 OR (%(default)s AND r.channel_id IS NULL)
                 OR (%(default)s AND NOT (r.channel_id = ANY(%(named)s))))))
   AND r.retain_until < r.sealed_at + %(days)s * interval '86400 seconds'
"""

PROPAGATE = """
WITH src AS (
    SELECT seq, retain_until FROM retention_record
     WHERE policy_id = %(policy)s AND disposed_at IS NULL AND kind = ANY(%(kinds)s)
),
msg AS (
    SELECT m.id, m.conversation_id, m.sender_id, m.delivery_id, c.participant_id, src.retain_until
      FROM src JOIN messaging_message m ON m.seq = src.seq
      JOIN messaging_conversation c ON c.id = m.conversation_id
),
people AS (
    SELECT participant_id AS id, retain_until FROM msg WHERE participant_id IS NOT NULL
    UNION ALL SELECT sender_id, retain_until FROM msg WHERE sender_id IS NOT NULL
),
dep(seq, until) AS (
    SELECT c.seq, msg.retain_until FROM msg
      JOIN messaging_conversation c ON c.id = msg.conversation_id
    UNION ALL SELECT p.seq, people.retain_until FROM people
      JOIN messaging_participant p ON p.id = people.id
    UNION ALL SELECT pp.seq, people.retain_until FROM people
      JOIN messaging_participantprofile pp ON pp.participant_id = people.id
    UNION ALL SELECT d.seq, msg.retain_until FROM msg
      JOIN messaging_deliveryseal d ON d.delivery_id = msg.delivery_id
    UNION ALL SELECT x.seq, src.retain_until FROM src
      JOIN messaging_importedmessage i ON i.seq = src.seq
      JOIN messaging_chatexport x ON x.id = i.export_id
    UNION ALL SELECT f.seq, src.retain_until FROM src
      JOIN messaging_importedmessage i ON i.seq = src.seq
      JOIN messaging_chatexport x ON x.id = i.export_id
      JOIN messaging_mediafile f ON f.id = x.file_id
    UNION ALL SELECT d.seq, src.retain_until FROM src
      JOIN messaging_statusevent s ON s.seq = src.seq
      JOIN messaging_deliveryseal d ON d.delivery_id = s.delivery_id
    UNION ALL SELECT d.seq, src.retain_until FROM src
      JOIN messaging_accountevent e ON e.seq = src.seq
      JOIN messaging_deliveryseal d ON d.delivery_id = e.delivery_id
    UNION ALL SELECT d.seq, src.retain_until FROM src
      JOIN messaging_unparseditem u ON u.seq = src.seq
      JOIN messaging_deliveryseal d ON d.delivery_id = u.delivery_id
    UNION ALL SELECT a.seq, msg.retain_until FROM msg
      JOIN messaging_attachment a ON a.message_id = msg.id
    UNION ALL SELECT f.seq, msg.retain_until FROM msg
      JOIN messaging_attachment a ON a.message_id = msg.id
      JOIN messaging_mediafile f ON f.id = a.file_id
)
UPDATE retention_record r SET retain_until = d.until, policy_id = %(policy)s
  FROM (SELECT seq, max(until) AS until FROM dep GROUP BY seq) d
 WHERE r.seq = d.seq AND r.disposed_at IS NULL AND r.retain_until < d.until
"""


def save(
    policy: RetentionPolicy,
    user: User | None,
    channels: list[Channel] | None = None,
    *,
    allow_zero: bool = False,
) -> int:
    """Save a new or changed policy (and its channels); return how many records it lengthened."""
    if not 0 <= policy.days <= MAX_DAYS:
        raise ValidationError(f"A period is between 0 and {MAX_DAYS:,} days (100 years).")
    if policy.days == 0 and not allow_zero:
        raise ValidationError(ZERO_DAY_WARNING + " Confirm it to go on.")
    if not policy.rule.strip():
        raise ValidationError("Name the rule this policy implements.")
    with transaction.atomic():
        with connection.cursor() as cursor:  # appenders' lock first, as disposition takes it
            cursor.execute("SELECT 1 FROM archive_chainhead WHERE id = 1 FOR UPDATE")
        previous = (
            RetentionPolicy.objects.select_for_update().filter(pk=policy.pk).first()
            if policy.pk
            else None
        )
        before_days = previous.days if previous else None
        if policy.is_default:
            RetentionPolicy.objects.filter(is_default=True).exclude(pk=policy.pk).update(
                is_default=False
            )
        elif previous is not None and previous.is_default:
            raise ValidationError(
                "There must be a default policy: make another one the default instead."
            )
        policy.save()
        if channels is not None:
            policy.channels.set(channels)
        lengthened = _extend(policy)
        named = sorted(policy.channels.values_list("phone_number_id", flat=True))
        ledger.append(
            [
                Fact(
                    "retention.policy",
                    {
                        "policy": policy.pk,
                        "days": policy.days,
                        "previous_days": before_days,
                        "default": policy.is_default,
                        "records_lengthened": lengthened,
                    },
                    {
                        "name": policy.name.encode(),
                        "rule": policy.rule.encode(),
                        "channels": json.dumps(named).encode(),
                        "user": actor(user),
                    },
                )
            ]
        )
    return lengthened


def _extend(policy: RetentionPolicy) -> int:
    channels = list(policy.channels.values_list("pk", flat=True))
    named = list(RetentionPolicy.channels.through.objects.values_list("channel_id", flat=True))
    params: dict[str, Any] = {
        "policy": policy.pk,
        "days": policy.days,
        "kinds": OWN_KINDS,
        "channels": channels,
        "default": policy.is_default,
        "named": named,
    }
    with connection.cursor() as cursor:
        cursor.execute(EXTEND_OWN, params)
        lengthened = int(cursor.rowcount)
        if lengthened:
            cursor.execute(PROPAGATE, params)
            lengthened += int(cursor.rowcount)
    return lengthened


def period_text(days: int) -> str:
    """“6 years (2,191 days)” for people; exact days are what the archive applies."""
    years = days / 365.25
    if days and abs(years - round(years)) < 0.01:
        return f"{round(years)} years ({days:,} days)"
    return f"{days:,} days"
