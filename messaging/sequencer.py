"""The sequencer: seals pending deliveries in arrival order, in batches, one transaction each.

It is the capture path's one serial point (an advisory lock), which is what makes "exactly once"
simple: under the lock, a message already archived for (channel, wamid) or a status already
archived for (channel, wamid, status, time) is counted as a duplicate instead of stored again.
A crash rolls the whole batch back; the next run seals it again from the inbox.
"""

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from archive import ledger
from archive.envelope import Fact, rfc3339
from archive.models import LedgerEntry
from messaging.models import (
    AccountEvent,
    Channel,
    Conversation,
    Delivery,
    DeliverySeal,
    Direction,
    Message,
    Participant,
    ParticipantProfile,
    StatusEvent,
    UnparsedItem,
)
from messaging.parsers import cloud_api
from messaging.parsers.cloud_api import Item

logger = logging.getLogger(__name__)
SEQUENCER_LOCK = 0x436C5769_6E646F77  # "ClWindow": one sequencer at a time, cluster-wide
BATCH = 100


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode()


@dataclass
class Batch:
    """Facts to seal and, for each, the record to write once its ledger entry exists."""

    facts: list[Fact] = field(default_factory=list)
    builders: list[Any] = field(default_factory=list)
    participants: dict[str, Participant] = field(default_factory=dict)
    conversations: dict[tuple[int, str], Conversation] = field(default_factory=dict)
    seen_messages: set[tuple[int, str]] = field(default_factory=set)
    seen_statuses: set[tuple[int, str, str, Any]] = field(default_factory=set)
    seen_profiles: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, fact: Fact, build: Any) -> None:
        self.facts.append(fact)
        self.builders.append(build)


@dataclass
class Tally:
    items: int = 0
    duplicates: int = 0
    unparsed: int = 0


def process_deliveries(limit: int | None = None) -> int:
    """Seal every pending delivery (or `limit` of them); return how many were sealed."""
    sealed = 0
    while limit is None or sealed < limit:
        count = process_batch(BATCH if limit is None else min(BATCH, limit - sealed))
        if count == 0:
            break
        sealed += count
    return sealed


def process_batch(size: int = BATCH) -> int:
    """One transaction: lock, take the oldest pending deliveries, seal them all."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEQUENCER_LOCK])
        pending = list(Delivery.objects.filter(seal__isnull=True).order_by("id")[:size])
        if not pending:
            return 0
        channels = {c.phone_number_id: c for c in Channel.objects.all()}
        batch = Batch()
        tallies = [_plan_delivery(batch, channels, delivery) for delivery in pending]
        for delivery, tally in zip(pending, tallies, strict=True):
            batch.add(_delivery_fact(delivery, tally), _seal_builder(delivery, tally))
        entries = ledger.append(batch.facts)
        for build, entry in zip(batch.builders, entries, strict=True):
            build(entry)
    return len(pending)


def _plan_delivery(batch: Batch, channels: dict[str, Channel], delivery: Delivery) -> Tally:
    tally = Tally()
    for item in cloud_api.parse(bytes(delivery.body)):
        tally.items += 1
        channel = channels.get(item.phone_number_id)
        try:
            outcome = _plan_item(batch, channel, delivery, item)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            outcome = _plan_unparsed(batch, delivery, item, f"cannot read item: {exc}")
        if outcome == "duplicate":
            tally.duplicates += 1
        elif outcome == "unparsed":
            tally.unparsed += 1
    return tally


def _plan_item(batch: Batch, channel: Channel | None, delivery: Delivery, item: Item) -> str:
    if item.kind == "unparsed":
        return _plan_unparsed(batch, delivery, item, item.reason)
    if item.kind == "event":
        return _plan_event(batch, channel, delivery, item)
    if channel is None:
        reason = f"unknown channel (phone_number_id {item.phone_number_id!r})"
        return _plan_unparsed(batch, delivery, item, reason)
    if not isinstance(item.raw, dict) or not isinstance(item.raw.get("id"), str):
        return _plan_unparsed(batch, delivery, item, f"{item.kind} without an id")
    if item.kind == "status":
        return _plan_status(batch, channel, delivery, item)
    return _plan_message(batch, channel, delivery, item)


def _plan_unparsed(batch: Batch, delivery: Delivery, item: Item, reason: str) -> str:
    raw = item.raw if isinstance(item.raw, str) else json.dumps(item.raw, ensure_ascii=False)
    fact = Fact(
        "item.unparsed",
        {"delivery": delivery.pk, "path": item.path},
        {"raw": raw.encode(), "reason": reason.encode()},
    )

    def build(entry: LedgerEntry) -> None:
        UnparsedItem.objects.create(
            delivery=delivery, path=item.path, reason=reason, raw=raw, entry=entry
        )

    batch.add(fact, build)
    logger.warning("delivery %s: unparsed item at %s", delivery.pk, item.path)
    return "unparsed"


def _plan_event(batch: Batch, channel: Channel | None, delivery: Delivery, item: Item) -> str:
    fact = Fact(
        "account.event",
        {
            "delivery": delivery.pk,
            "field": item.field_name[:100],
            "phone_number_id": item.phone_number_id,
        },
        {"item": _json_bytes(item.raw)},
    )

    def build(entry: LedgerEntry) -> None:
        AccountEvent.objects.create(
            channel=channel,
            field=item.field_name[:100],
            waba_id=item.waba_id[:64],
            payload=item.raw,
            delivery=delivery,
            entry=entry,
        )

    batch.add(fact, build)
    return "sealed"


def _plan_status(batch: Batch, channel: Channel, delivery: Delivery, item: Item) -> str:
    raw = item.raw
    occurred = cloud_api.timestamp(raw.get("timestamp"))
    status = str(raw.get("status", ""))[:32]
    if occurred is None or not status:
        return _plan_unparsed(batch, delivery, item, "status without a status or timestamp")
    key = (channel.pk, raw["id"], status, occurred)
    if (
        key in batch.seen_statuses
        or StatusEvent.objects.filter(
            channel=channel, wamid=raw["id"], status=status, occurred_at=occurred
        ).exists()
    ):
        return "duplicate"
    batch.seen_statuses.add(key)
    fact = Fact(
        "message.status",
        {
            "delivery": delivery.pk,
            "phone_number_id": channel.phone_number_id,
            "status": status,
            "occurred_at": rfc3339(occurred),
        },
        {"wamid": raw["id"].encode(), "item": _json_bytes(raw)},
    )

    def build(entry: LedgerEntry) -> None:
        StatusEvent.objects.create(
            channel=channel,
            wamid=raw["id"],
            status=status,
            occurred_at=occurred,
            recipient_id=str(raw.get("recipient_id", ""))[:250],
            payload=raw,
            delivery=delivery,
            entry=entry,
        )

    batch.add(fact, build)
    return "sealed"


def _plan_message(batch: Batch, channel: Channel, delivery: Delivery, item: Item) -> str:
    raw = item.raw
    key = (channel.pk, raw["id"])
    if (
        key in batch.seen_messages
        or Message.objects.filter(channel=channel, wamid=raw["id"]).exists()
    ):
        return "duplicate"
    batch.seen_messages.add(key)
    client = _client_identity(item)
    if client is None:
        return _plan_unparsed(batch, delivery, item, "message without a sender or recipient")
    participant = _participant(batch, *client)
    for contact in item.contacts:
        _profile(batch, contact, delivery)
    group = str(raw.get("group_id", ""))
    conversation = _conversation(batch, channel, participant, group)
    sender = participant if item.direction == Direction.INBOUND else None
    sent_at = cloud_api.timestamp(raw.get("timestamp"))
    text = cloud_api.message_text(raw)
    context = raw.get("context") if isinstance(raw.get("context"), dict) else {}
    fact = Fact(
        "message",
        {
            "delivery": delivery.pk,
            "phone_number_id": channel.phone_number_id,
            "direction": item.direction,
            "source": item.source,
            "type": str(raw.get("type", ""))[:64],
            "sent_at": rfc3339(sent_at) if sent_at else None,
        },
        {"wamid": raw["id"].encode(), "item": _json_bytes(raw), "text": text.encode()},
    )

    def build(entry: LedgerEntry) -> None:
        Message.objects.create(
            channel=channel,
            wamid=raw["id"],
            conversation=batch.conversations[conversation],
            direction=item.direction,
            source=item.source,
            type=str(raw.get("type", ""))[:64],
            sender=batch.participants[sender] if sender else None,
            sent_at=sent_at,
            text=text,
            target_wamid=cloud_api.target_wamid(raw)[:250],
            context_wamid=str(context.get("id", ""))[:250],
            forwarded=bool(context.get("forwarded")),
            frequently_forwarded=bool(context.get("frequently_forwarded")),
            payload=raw,
            delivery=delivery,
            entry=entry,
        )

    batch.add(fact, build)
    return "sealed"


def _client_identity(item: Item) -> tuple[str, str] | None:
    """(wa_id, business-scoped user id) of the client this message is with."""
    raw = item.raw
    if item.direction == Direction.OUTBOUND or item.source == "history":
        wa_id = item.counterpart if item.direction == Direction.OUTBOUND else raw.get("from", "")
        wa_id = wa_id or item.counterpart
        return (str(wa_id), "") if wa_id else None
    wa_id, user_id = str(raw.get("from", "")), str(raw.get("from_user_id", ""))
    if not wa_id and not user_id and item.contacts:
        wa_id = str(item.contacts[0].get("wa_id", ""))
        user_id = str(item.contacts[0].get("user_id", ""))
    return (wa_id, user_id) if wa_id or user_id else None


def _participant(batch: Batch, wa_id: str, user_id: str) -> str:
    """The participant's key, planning its creation when it is new."""
    key = f"wa:{wa_id}" if wa_id else f"bsuid:{user_id}"
    if key in batch.participants:
        return key
    existing = Participant.objects.filter(key=key).first()
    if existing is not None:
        batch.participants[key] = existing
        return key
    participant = Participant(key=key, wa_id=wa_id[:64], user_id=user_id[:200])
    batch.participants[key] = participant

    def build(entry: LedgerEntry) -> None:
        participant.entry = entry
        participant.save()

    batch.add(Fact("participant", {}, {"key": key.encode()}), build)
    return key


def _profile(batch: Batch, contact: dict[str, Any], delivery: Delivery) -> None:
    """A new profile row when a contact shows a name or username we have not seen for them."""
    profile: dict[str, Any] = contact.get("profile") or {}
    if not isinstance(profile, dict):
        profile = {}
    name, username = str(profile.get("name", "")), str(profile.get("username", ""))
    wa_id, user_id = str(contact.get("wa_id", "")), str(contact.get("user_id", ""))
    if not (wa_id or user_id) or not (name or username):
        return
    key = _participant(batch, wa_id, user_id)
    participant = batch.participants[key]
    latest = (
        ParticipantProfile.objects.filter(participant_id=participant.pk).order_by("-id").first()
        if participant.pk
        else None
    )
    if latest is not None and (latest.name, latest.username) == (name, username):
        return
    if (key, name, username) in batch.seen_profiles:
        return
    batch.seen_profiles.add((key, name, username))
    parent = str(contact.get("parent_user_id", ""))[:200]

    def build(entry: LedgerEntry) -> None:
        ParticipantProfile.objects.create(
            participant=batch.participants[key],
            name=name,
            username=username,
            parent_user_id=parent,
            seen_at=delivery.received_at,
            entry=entry,
        )

    batch.add(
        Fact("participant.profile", {}, {"name": name.encode(), "username": username.encode()}),
        build,
    )


def _conversation(batch: Batch, channel: Channel, participant: str, group: str) -> tuple[int, str]:
    key = f"group:{group}" if group else participant
    ref = (channel.pk, key)
    if ref in batch.conversations:
        return ref
    existing = Conversation.objects.filter(channel=channel, key=key).first()
    if existing is not None:
        batch.conversations[ref] = existing
        return ref
    conversation = Conversation(channel=channel, key=key, group_id=group[:250])
    batch.conversations[ref] = conversation

    def build(entry: LedgerEntry) -> None:
        conversation.participant = None if group else batch.participants[participant]
        conversation.entry = entry
        conversation.save()

    fact = Fact("conversation", {"phone_number_id": channel.phone_number_id}, {"key": key.encode()})
    batch.add(fact, build)
    return ref


def _delivery_fact(delivery: Delivery, tally: Tally) -> Fact:
    return Fact(
        "webhook.delivery",
        {
            "delivery": delivery.pk,
            "received_at": rfc3339(delivery.received_at),
            "items": tally.items,
            "duplicates": tally.duplicates,
            "unparsed": tally.unparsed,
        },
        {"body": bytes(delivery.body)},
    )


def _seal_builder(delivery: Delivery, tally: Tally) -> Any:
    def build(entry: LedgerEntry) -> None:
        DeliverySeal.objects.create(
            delivery=delivery,
            entry=entry,
            sealed_at=timezone.now(),
            items=tally.items,
            duplicates=tally.duplicates,
            unparsed=tally.unparsed,
        )

    return build
