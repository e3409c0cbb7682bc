"""`retain_until` is fixed when a record is sealed, in the same transaction.

A record's own policy is its channel's (the longest of the policies naming the channel, or the
default). What a record depends on is kept at least as long as the record: a message extends its
conversation, its participants and their names, and the webhook delivery that carried it; a media
file is kept as long as the longest-kept message that attached it. Extensions only ever lengthen
(PostgreSQL refuses anything else, see retention/migrations/0002_rules.py).

Periods count from sealing, not from the time a message says it was sent: an imported history
message is kept its full period from the day the archive received it, never less.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, models

from messaging.models import (
    AccountEvent,
    Attachment,
    ChatExport,
    Conversation,
    DeliverySeal,
    DuplicateItem,
    ImportedMessage,
    MediaFile,
    Message,
    Participant,
    ParticipantProfile,
    StatusEvent,
    UnparsedItem,
)

from . import object_lock
from .models import RetentionPolicy, RetentionRecord

# The ledger kind each capture record is sealed as (messaging/sequencer.py, messaging/media.py,
# imports/sealing.py; a Message an import created is sealed as `message.imported`, and
# Plan.own() reads the kind from the entry itself).
KINDS: dict[type[models.Model], str] = {
    Message: "message",
    StatusEvent: "message.status",
    AccountEvent: "account.event",
    UnparsedItem: "item.unparsed",
    DeliverySeal: "webhook.delivery",
    Conversation: "conversation",
    Participant: "participant",
    ParticipantProfile: "participant.profile",
    Attachment: "message.attachment",
    MediaFile: "media.file",
}
# What an import seals (imports/sealing.py): its entries, and the uploaded export.
IMPORT_KINDS: dict[type[models.Model], str] = {
    ImportedMessage: "message.imported",
    ChatExport: "chat.export",
}


@dataclass(frozen=True)
class Policy:
    id: int
    days: int

    def until(self, sealed_at: datetime) -> datetime:
        return sealed_at + timedelta(days=self.days)


@dataclass(frozen=True)
class Policies:
    """Every channel's policy, read once per sealing transaction."""

    default: Policy
    by_channel: dict[int, Policy]
    by_id: dict[int, Policy]

    @classmethod
    def load(cls) -> "Policies":
        default: Policy | None = None
        by_channel: dict[int, Policy] = {}
        by_id: dict[int, Policy] = {}
        grouped: dict[int, list[int]] = {}
        links = RetentionPolicy.channels.through.objects.values_list(
            "retentionpolicy_id", "channel_id"
        )
        for policy_id, channel_id in links:
            grouped.setdefault(policy_id, []).append(channel_id)
        for pk, days, is_default in RetentionPolicy.objects.values_list("pk", "days", "is_default"):
            policy = by_id[pk] = Policy(pk, days)
            if is_default:
                default = policy
            for channel_id in grouped.get(pk, []):
                known = by_channel.get(channel_id)
                if known is None or (days, -pk) > (known.days, -known.id):
                    by_channel[channel_id] = policy
        if default is None:
            raise RuntimeError("retention: there is no default retention policy")
        return cls(default, by_channel, by_id)

    def for_channel(self, channel_id: int | None) -> Policy:
        if channel_id is None:
            return self.default
        return self.by_channel.get(channel_id, self.default)


@dataclass
class Row:
    seq: int
    kind: str
    sealed_at: datetime
    channel_id: int | None
    conversation_id: int | None
    policy: Policy
    retain_until: datetime


@dataclass
class Plan:
    """New rows to insert, and longer retention for records sealed earlier."""

    new: dict[int, Row] = field(default_factory=dict)
    extend: dict[int, tuple[datetime, Policy]] = field(default_factory=dict)

    def own(self, record: models.Model, policy: Policy, **where: int | None) -> Row:
        entry = record.entry  # type: ignore[attr-defined]
        row = Row(
            entry.seq,
            getattr(entry, "kind", None) or {**KINDS, **IMPORT_KINDS}[type(record)],
            entry.sealed_at,
            where.get("channel_id"),
            where.get("conversation_id"),
            policy,
            policy.until(entry.sealed_at),
        )
        self.new[row.seq] = row
        return row

    def at_least(self, seq: int | None, until: datetime, policy: Policy) -> None:
        """Keep `seq` until `until` at least (for policy `policy`)."""
        if seq is None:
            return
        row = self.new.get(seq)
        if row is not None:
            if until > row.retain_until:
                row.retain_until = until
                # named only if its period, counted from this record's sealing, fits: a record
                # sealed later than what it depends on keeps its own policy (PostgreSQL checks)
                if until >= policy.until(row.sealed_at):
                    row.policy = policy
            return
        known = self.extend.get(seq)
        if known is None or until > known[0]:
            self.extend[seq] = (until, policy)


def sealed(records: Sequence[models.Model], duplicates: Sequence[DuplicateItem] = ()) -> None:
    """Fix the retention of records the sequencer (or an import, imports/sealing.py) has just
    sealed (each has its `.entry`); a delivery that repeated earlier items is kept as long as
    they are."""
    policies = Policies.load()
    plan = Plan()
    _new_media(plan, records, policies)
    seals = {r.delivery_id: r for r in records if isinstance(r, DeliverySeal)}
    # a re-seal (messaging.sequencer.reseal) makes records of a delivery sealed earlier
    delivery_ids = {getattr(r, "delivery_id", None) for r in (*records, *duplicates)}
    earlier = [pk for pk in delivery_ids if pk is not None and pk not in seals]
    seals.update((s.delivery_id, s) for s in DeliverySeal.objects.filter(delivery_id__in=earlier))
    messages = [r for r in records if isinstance(r, Message)]
    participants = _participant_entries(messages)
    profiles = _profile_entries(participants)
    for record in records:
        if isinstance(record, Message):
            policy = policies.for_channel(record.channel_id)
            row = plan.own(
                record,
                policy,
                channel_id=record.channel_id,
                conversation_id=record.conversation_id,
            )
            people = {record.conversation.participant_id, record.sender_id} - {None}
            dependents = [record.conversation.entry_id]
            if record.delivery_id is not None:  # else imported: kept with its upload (below)
                dependents.append(seals[record.delivery_id].entry_id)
            for person in people:
                dependents.append(participants.get(person))  # type: ignore[arg-type]
                dependents.extend(profiles.get(person, ()))  # type: ignore[arg-type]
            for seq in dependents:
                plan.at_least(seq, row.retain_until, policy)
        elif isinstance(record, StatusEvent | AccountEvent | UnparsedItem):
            channel_id = getattr(record, "channel_id", None)
            policy = policies.for_channel(channel_id)
            row = plan.own(record, policy, channel_id=channel_id)
            plan.at_least(seals[record.delivery_id].entry_id, row.retain_until, policy)
    _imported(plan, records, policies)
    _names_as_long_as_their_participant(plan, records, policies)
    _repeats_as_long_as_the_originals(plan, seals, duplicates, policies)
    # What the batch's records depend on is kept as long as the longest of them; what nothing
    # refers to yet (a name seen in a contact card, a delivery of duplicates) by the default.
    for record in records:
        if isinstance(record, DeliverySeal | Conversation | Participant | ParticipantProfile):
            wanted = plan.extend.pop(record.entry_id, None)
            policy = wanted[1] if wanted else policies.default
            row = plan.own(record, policy, channel_id=getattr(record, "channel_id", None))
            if wanted is not None:
                row.retain_until = max(row.retain_until, wanted[0])
    write(plan)


def _new_media(plan: Plan, records: Sequence[models.Model], policies: Policies) -> None:
    """Media files stored just now (an upload, a zip member: imports/) start with the default
    policy and are lengthened by whatever refers to them."""
    for record in records:
        if isinstance(record, MediaFile):
            plan.own(record, policies.default)


def _imported(plan: Plan, records: Sequence[models.Model], policies: Policies) -> None:
    """Imports (imports/sealing.py): an uploaded export and its bytes under its channel's policy;
    an imported entry under its channel's (one that created a message shares its seq and row);
    the upload kept as long as the longest entry imported from it; an attached file as long as
    its message."""
    exports = {r.pk: r for r in records if isinstance(r, ChatExport)}
    entries = [r for r in records if isinstance(r, ImportedMessage)]
    # export id → (its seq, its upload's seq, its channel)
    seqs = {
        pk: (seq, file_seq, channel_id)
        for pk, seq, file_seq, channel_id in ChatExport.objects.filter(
            pk__in={r.export_id for r in entries} - set(exports)
        ).values_list("pk", "entry_id", "file__entry_id", "channel_id")
    }
    for export in exports.values():
        policy = policies.for_channel(export.channel_id)
        row = plan.own(export, policy, channel_id=export.channel_id)
        plan.at_least(export.file.entry_id, row.retain_until, policy)
        seqs[export.pk] = (export.entry_id, export.file.entry_id, export.channel_id)
    for entry in entries:
        export_seq, file_seq, channel_id = seqs[entry.export_id]
        own = plan.new.get(entry.entry_id)  # the message it created shares its seq and row
        if own is None:  # linked to a message archived before: this export's view of it
            own = plan.own(entry, policies.for_channel(channel_id), channel_id=channel_id)
        plan.at_least(export_seq, own.retain_until, own.policy)
        plan.at_least(file_seq, own.retain_until, own.policy)
    for attachment in records:
        if isinstance(attachment, Attachment):
            message = attachment.message
            kept = plan.new.get(message.entry_id)
            policy = kept.policy if kept else policies.for_channel(message.channel_id)
            row = plan.own(
                attachment,
                policy,
                channel_id=message.channel_id,
                conversation_id=message.conversation_id,
            )
            if kept is not None:
                plan.at_least(row.seq, kept.retain_until, kept.policy)
            if attachment.file is not None:
                plan.at_least(attachment.file.entry_id, row.retain_until, row.policy)


def _repeats_as_long_as_the_originals(
    plan: Plan,
    seals: dict[int, DeliverySeal],
    duplicates: Sequence[DuplicateItem],
    policies: Policies,
) -> None:
    if not duplicates:
        return
    wanted: dict[tuple[int, str], set[int]] = {}
    for item in duplicates:
        wanted.setdefault((item.channel_id, item.wamid), set()).add(item.delivery_id)
    originals: dict[int, tuple[int, str]] = {
        seq: (channel_id, wamid)
        for channel_id, wamid, seq in Message.objects.filter(
            wamid__in={wamid for _, wamid in wanted}
        ).values_list("channel_id", "wamid", "entry_id")
    }
    kept = RetentionRecord.objects.filter(entry_id__in=originals).values_list(
        "entry_id", "retain_until", "policy_id"
    )
    for seq, until, policy_id in kept:
        channel_id, wamid = originals[seq]
        for delivery_id in wanted.get((channel_id, wamid), ()):
            plan.at_least(seals[delivery_id].entry_id, until, policies.by_id[policy_id])


def _names_as_long_as_their_participant(
    plan: Plan, records: Sequence[models.Model], policies: Policies
) -> None:
    """A name first shown now is kept at least as long as its participant already is."""
    names = [r for r in records if isinstance(r, ParticipantProfile)]
    if not names:
        return
    owners = {name.participant.entry_id for name in names}
    kept = {
        seq: (until, policy_id)
        for seq, until, policy_id in RetentionRecord.objects.filter(
            entry_id__in=owners
        ).values_list("entry_id", "retain_until", "policy_id")
    }
    for name in names:
        if name.participant.entry_id in kept:
            until, policy_id = kept[name.participant.entry_id]
            plan.at_least(name.entry_id, until, policies.by_id[policy_id])


def _participant_entries(messages: Iterable[Message]) -> dict[int, int]:
    """participant id → its entry's seq, for everyone these messages concern."""
    ids = {
        pk
        for m in messages
        for pk in (m.conversation.participant_id, m.sender_id)
        if pk is not None
    }
    if not ids:
        return {}
    return dict(Participant.objects.filter(pk__in=ids).values_list("pk", "entry_id"))


def _profile_entries(participants: dict[int, int]) -> dict[int, list[int]]:
    """participant id → the seqs of every name they have shown."""
    found: dict[int, list[int]] = {}
    if participants:
        rows = ParticipantProfile.objects.filter(participant_id__in=participants).values_list(
            "participant_id", "entry_id"
        )
        for participant_id, seq in rows:
            found.setdefault(participant_id, []).append(seq)
    return found


def attached(attachment: Attachment, media: MediaFile | None) -> None:
    """Fix the retention of a message's attachment entry and its media file (media.py)."""
    policies = Policies.load()
    message = attachment.message
    kept = (
        RetentionRecord.objects.filter(entry_id=message.entry_id)
        .values_list("retain_until", "policy_id")
        .first()
    )
    policy = policies.for_channel(message.channel_id)
    plan = Plan()
    row = plan.own(
        attachment, policy, channel_id=message.channel_id, conversation_id=message.conversation_id
    )
    if kept is not None:
        plan.at_least(row.seq, kept[0], policies.by_id[kept[1]])
    if media is not None:
        if not RetentionRecord.objects.filter(entry_id=media.entry_id).exists():
            plan.own(media, row.policy)  # stored just now (or by a worker that lost the race)
        plan.at_least(media.entry_id, row.retain_until, row.policy)
        object_lock.wake()  # the stored object's retention follows its record
    write(plan)


# Bridge records (bridge/): a staff reply email, a send request, a send Meta refused. Each is
# kept under its channel's policy, like the messages it carried or tried to send.
BRIDGE_KINDS = ("email.inbound", "message.send", "message.send_failed")


def bridged(entry: Any, kind: str, channel_id: int | None, conversation_id: int | None) -> None:
    """Fix the retention of a bridge record just sealed (`entry` is its LedgerEntry)."""
    if kind not in BRIDGE_KINDS:
        raise ValueError(f"retention: {kind} is not a bridge record")
    policy = Policies.load().for_channel(channel_id)
    row = Row(
        entry.seq,
        kind,
        entry.sealed_at,
        channel_id,
        conversation_id,
        policy,
        policy.until(entry.sealed_at),
    )
    write(Plan(new={row.seq: row}))


def media_stored(media: MediaFile, channel_id: int) -> None:
    """A file staff sent (bridge/outbound.py), stored before its message is: its channel's
    policy from the start, lengthened by whatever message attaches it."""
    plan = Plan()
    plan.own(media, Policies.load().for_channel(channel_id))
    write(plan)
    object_lock.wake()


def sent(message: Message) -> None:
    """Fix the retention of a message ClientWindow sent (no webhook carried it): its channel's
    policy, and its conversation, client and the client's names kept at least as long."""
    policies = Policies.load()
    plan = Plan()
    policy = policies.for_channel(message.channel_id)
    row = plan.own(
        message, policy, channel_id=message.channel_id, conversation_id=message.conversation_id
    )
    participants = _participant_entries([message])
    profiles = _profile_entries(participants)
    dependents = [message.conversation.entry_id, *participants.values()]
    for seqs in profiles.values():
        dependents.extend(seqs)
    for seq in dependents:
        plan.at_least(seq, row.retain_until, policy)
    write(plan)


def write(plan: Plan) -> None:
    """Insert the new rows, then lengthen (never shorten) what was sealed before."""
    with connection.cursor() as cursor:
        rows = [
            (
                r.seq,
                r.kind,
                r.channel_id,
                r.conversation_id,
                r.policy.id,
                r.sealed_at,
                r.retain_until,
            )
            for r in plan.new.values()
        ]
        if len(rows) >= COPY_FROM_ROWS:  # an import's batch: thousands of rows
            with cursor.cursor.copy(COPY_RECORDS) as copy:
                for row in rows:
                    copy.write_row(row)
        elif rows:
            cursor.executemany(INSERT_RECORD, rows)
        if plan.extend:
            seqs, needed, untils, policy_ids = zip(
                *(
                    (seq, until, lengthened(until, policy), policy.id)
                    for seq, (until, policy) in sorted(plan.extend.items())
                ),
                strict=True,
            )
            cursor.execute(
                "UPDATE retention_record r SET retain_until = v.until, policy_id = v.policy FROM"
                " unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::bigint[])"
                " AS v(seq, needed, until, policy)"
                " WHERE r.seq = v.seq AND r.disposed_at IS NULL AND r.retain_until < v.needed",
                [list(seqs), list(needed), list(untils), list(policy_ids)],
            )


def lengthened(until: datetime, policy: Policy) -> datetime:
    """What a record sealed earlier is kept until when a later one needs it until `until`: the
    end of that day (UTC) under a policy of a day or more, else `until` itself.

    A conversation, its client and the client's names are lengthened by each batch of their
    messages, each time an UPDATE of an old row among millions in all of retention_record's
    indexes (94-166 ms a 2,000-message batch at 10M messages, docs/SCALE.md §7e). Kept to the
    day's end, they are lengthened once a day. Disposition runs daily, so such a record goes at
    most one run after the last record that needed it; a 0-day policy stays exact."""
    if policy.days < 1:
        return until
    start = until.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return until if until == start else start + timedelta(days=1)


# As archive/ledger.py: a few rows INSERT in one pipelined round trip, more are COPYed (the
# fastest way PostgreSQL takes rows; retention_record_insert_guard checks the whole statement
# either way).
COPY_FROM_ROWS = 8
INSERT_RECORD = (
    "INSERT INTO retention_record (seq, kind, channel_id, conversation_id, policy_id, sealed_at,"
    " retain_until) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
COPY_RECORDS = (
    "COPY retention_record (seq, kind, channel_id, conversation_id, policy_id, sealed_at,"
    " retain_until) FROM STDIN"
)


BACKFILL = """
WITH d AS (SELECT id, days FROM retention_retentionpolicy WHERE is_default)
INSERT INTO retention_record (seq, kind, channel_id, conversation_id, policy_id, sealed_at,
                              retain_until)
SELECT e.seq, e.kind, x.channel_id, x.conversation_id, d.id, e.sealed_at,
       e.sealed_at + d.days * interval '86400 seconds'
  FROM (
    SELECT seq, channel_id, conversation_id FROM messaging_message
    UNION ALL SELECT seq, channel_id, NULL FROM messaging_statusevent
    UNION ALL SELECT seq, channel_id, NULL FROM messaging_accountevent
    UNION ALL SELECT seq, NULL, NULL FROM messaging_unparseditem
    UNION ALL SELECT seq, NULL, NULL FROM messaging_deliveryseal
    UNION ALL SELECT seq, channel_id, NULL FROM messaging_conversation
    UNION ALL SELECT seq, NULL, NULL FROM messaging_participant
    UNION ALL SELECT seq, NULL, NULL FROM messaging_participantprofile
    UNION ALL SELECT a.seq, m.channel_id, m.conversation_id FROM messaging_attachment a
      JOIN messaging_message m ON m.id = a.message_id
    UNION ALL SELECT seq, NULL, NULL FROM messaging_mediafile
  ) AS x(seq, channel_id, conversation_id)
  JOIN archive_ledgerentry e ON e.seq = x.seq
 CROSS JOIN d
 WHERE NOT EXISTS (SELECT 1 FROM retention_record r WHERE r.seq = x.seq)
"""


def backfill(cursor: Any) -> int:
    """Give records sealed before retention existed the default policy (and their dependents
    the retention of what depends on them); return how many were given one."""
    from .policies import OWN_KINDS, PROPAGATE

    cursor.execute(BACKFILL)
    added = int(cursor.rowcount)
    if added:
        cursor.execute("SELECT id, days FROM retention_retentionpolicy WHERE is_default")
        policy, days = cursor.fetchone()
        cursor.execute(PROPAGATE, {"policy": policy, "days": days, "kinds": OWN_KINDS})
    return added
