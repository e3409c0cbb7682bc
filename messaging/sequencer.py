"""The sequencer: seals pending deliveries in arrival order, in batches, one transaction each.

It is the capture path's one serial point (an advisory lock), which is what makes "exactly once"
simple: under the lock, a message already archived for (channel, wamid) or a status already
archived for (channel, wamid, status, time) is counted as a duplicate instead of stored again.
A crash rolls the whole batch back; the next run seals it again from the inbox.

A batch costs a fixed number of queries whatever its size: what already exists is read in bulk,
every fact is sealed by one ledger append, and each kind of record is written by one bulk insert.
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError, DataError, IntegrityError, connection, models, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from archive import ledger
from archive.envelope import Fact, Scalar, rfc3339
from messaging import hooks, hygiene, summaries
from messaging.inbox import wake_media_fetcher
from messaging.models import (
    MEDIA_TYPES,
    AccountEvent,
    Channel,
    Conversation,
    Delivery,
    DeliverySeal,
    Direction,
    DuplicateItem,
    Message,
    Participant,
    ParticipantProfile,
    PendingDelivery,
    Reseal,
    StatusEvent,
    UnparsedItem,
)
from messaging.parsers import cloud_api
from messaging.parsers.cloud_api import Item
from messaging.participants import participant_key

logger = logging.getLogger(__name__)
SEQUENCER_LOCK = 0x436C5769_6E646F77  # "ClWindow": one sequencer at a time, cluster-wide
BATCH = 100
# Records are inserted in this order, so that each finds the rows it refers to.
WRITE_ORDER: tuple[type[models.Model], ...] = (
    Participant,
    ParticipantProfile,
    Conversation,
    Message,
    StatusEvent,
    AccountEvent,
    UnparsedItem,
    DeliverySeal,
    Reseal,
)
StatusKey = tuple[int, str, str, datetime]


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode()


@dataclass
class Tally:
    items: int = 0
    duplicates: int = 0
    unparsed: int = 0


@dataclass
class Batch:
    """What one batch seals: facts, each with the (unsaved) record its entry will back, and what
    the archive already holds for the keys this batch touches."""

    channels: dict[str, Channel]
    facts: list[Fact] = field(default_factory=list)
    records: list[models.Model] = field(default_factory=list)
    messages: set[tuple[int, str]] = field(default_factory=set)
    statuses: set[StatusKey] = field(default_factory=set)
    participants: dict[str, Participant] = field(default_factory=dict)
    conversations: dict[tuple[int, str], Conversation] = field(default_factory=dict)
    profiles: dict[str, tuple[str, str]] = field(default_factory=dict)
    duplicates: list[DuplicateItem] = field(default_factory=list)  # repeated items, by delivery

    def add(self, fact: Fact, record: models.Model) -> None:
        self.facts.append(fact)
        self.records.append(record)


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
    """One transaction: lock, take the oldest pending deliveries, seal them all.

    If sealing the batch raises, it is sealed again one delivery at a time, and a delivery that
    still raises is sealed whole as an unparsed item: no content can hold back the deliveries
    after it. Only a failure that is the database's, not the content's (`_not_the_content`),
    rolls the batch back for the next run.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEQUENCER_LOCK])
        batch = _take(size)
        if not batch:
            return 0
        try:
            with transaction.atomic():
                _seal_deliveries(batch)
        except Exception as exc:
            if _not_the_content(exc):
                raise
            logger.warning(
                "a batch of %d deliveries raised %s; sealing them one at a time",
                len(batch),
                type(exc).__name__,
            )
            for delivery in batch:
                _seal_alone(delivery)
    return len(batch)


def _seal_alone(delivery: Delivery) -> None:
    try:
        with transaction.atomic():
            _seal_deliveries([delivery])
    except Exception as exc:
        if _not_the_content(exc):
            raise
        logger.error(
            "delivery %s raised %s when sealed; sealed whole as an unparsed item",
            delivery.pk,
            _error_name(exc),
        )
        _quarantine(delivery, exc)


def _not_the_content(exc: BaseException) -> bool:
    """Whether sealing failed because of the database rather than what a delivery holds: a lost
    connection, a deadlock or serialization failure, a shutdown, no resources, missing
    privileges. Those are retried (and the backlog alarm says if they last); everything else is
    blamed on the content: data and integrity errors (psycopg raises some before sending, such
    as a NUL in text) and the SQLSTATE classes 22, 23 and 54 (limits, such as a text too long
    for a tsvector, which psycopg files under OperationalError)."""
    if not isinstance(exc, DatabaseError) or isinstance(exc, DataError | IntegrityError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or sqlstate[:2] not in {"22", "23", "54"}


def _error_name(exc: BaseException) -> str:
    """The exception's class; psycopg's (ProgramLimitExceeded) says more than Django's wrapper."""
    cause = exc.__cause__ if isinstance(exc, DatabaseError) and exc.__cause__ else exc
    return type(cause).__name__[:100]


def _quarantine(delivery: Delivery, exc: BaseException) -> None:
    """Seal a delivery whose items could not be sealed as one unparsed item: its exact bytes,
    the exception's class and a short reason (never the exception's text: it may quote content)."""
    error = _error_name(exc)
    reason = f"the delivery could not be sealed: {error} (its bytes are kept whole)"
    batch = Batch(channels={})
    body = bytes(delivery.body)
    batch.add(
        Fact(
            "item.unparsed",
            {"delivery": delivery.pk, "path": "$", "error": error},
            {"raw": body, "reason": reason.encode()},
        ),
        UnparsedItem(delivery=delivery, path="$", reason=reason, error=error, raw=body),
    )
    tally = Tally(items=1, unparsed=1)
    batch.add(_delivery_fact(delivery, tally), _seal(delivery, tally))
    _write(batch)


def _seal_deliveries(pending: list[Delivery]) -> None:
    """Seal these deliveries' items and the deliveries themselves, in one ledger append."""
    parsed = [(delivery, cloud_api.parse(bytes(delivery.body))) for delivery in pending]
    batch = Batch(channels={c.phone_number_id: c for c in Channel.objects.all()})
    _load_existing(batch, [item for _, items in parsed for item in items])
    for delivery, items in parsed:
        tally = _plan_delivery(batch, delivery, items)
        batch.add(_delivery_fact(delivery, tally), _seal(delivery, tally))
    _write(batch)


def _write(batch: Batch) -> None:
    """Append the batch's facts to the ledger and write their records."""
    for record, entry in zip(batch.records, ledger.append(batch.facts), strict=True):
        record.entry = entry  # type: ignore[attr-defined]
    for model in WRITE_ORDER:
        _insert([r for r in batch.records if type(r) is model])
    _insert(batch.duplicates)
    hooks.sealed(batch.records, batch.duplicates)  # retention/assign.py, in this transaction
    messages = [r for r in batch.records if type(r) is Message]
    summaries.record([r for r in batch.records if type(r) is Conversation], messages)
    # Django drops these if a savepoint around them rolls back
    if messages:
        hooks.messages_sealed()  # the lexicon scan, the bridge
    if any(isinstance(r, Message) and r.type in MEDIA_TYPES for r in batch.records):
        transaction.on_commit(wake_media_fetcher)


# From this many rows a record table is written by COPY (as the ledger's are); below, by
# bulk_create's one INSERT.
COPY_FROM_ROWS = 8


def _insert(rows: Sequence[models.Model]) -> None:
    """Write new records of one model: bulk_create's work, by COPY from this many rows up.

    Measured in the capture benchmark (tests/performance/test_bench_capture_e2e.py): bulk_create
    of a batch's ~2,000 messages spent most of its time in Python, building and converting one
    INSERT of 30,000 parameters (and, under DEBUG, formatting it again for the query log), and
    then read every row's generated tsvector back. COPY streams the rows; their ids are drawn
    from the table's sequence first, so the records know them as bulk_create's would."""
    if len(rows) < COPY_FROM_ROWS:
        if rows:
            type(rows[0])._default_manager.bulk_create(rows)
        return
    opts = rows[0]._meta
    fields = [f for f in opts.concrete_fields if not f.generated]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if isinstance(opts.pk, models.AutoField):
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [opts.db_table, opts.pk.column, len(rows)],
            )
            for record, (pk,) in zip(rows, cursor.fetchall(), strict=True):
                record.pk = pk
        columns = ", ".join(quote(str(f.column)) for f in fields)
        # names from the model, the values streamed: nothing from a delivery is SQL here
        statement = f"COPY {quote(opts.db_table)} ({columns}) FROM STDIN"
        with connection.wrap_database_errors, cursor.cursor.copy(statement) as copy:
            for record in rows:
                # what bulk_create does first: foreign keys from the records saved before it
                record._prepare_related_fields_for_save(  # type: ignore[attr-defined]
                    operation_name="bulk_create"
                )
                copy.write_row(
                    [f.get_db_prep_save(f.pre_save(record, True), connection) for f in fields]
                )
    for record in rows:
        record._state.adding = False
        record._state.db = connection.alias


class ResealRefused(Exception):
    """Why an unparsed item cannot be re-sealed (shown to the administrator)."""


def reseal(unparsed: UnparsedItem, user: Any = None) -> Reseal:
    """Read an unparsed item again with the current code (after a fix, or once its channel
    exists) and seal what it now yields; the new records point at the item's original delivery,
    and the re-seal itself is sealed. An item read in full by an earlier re-seal is refused."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEQUENCER_LOCK])
        if Reseal.objects.filter(unparsed=unparsed, unparsed_again=0).exists():
            raise ResealRefused("it has already been re-sealed in full")
        delivery = unparsed.delivery
        body = bytes(delivery.body)
        if not body:
            raise ResealRefused("its bytes have been disposed of")
        items = [i for i in cloud_api.parse(body) if _within(i.path, unparsed.path)]
        batch = Batch(channels={c.phone_number_id: c for c in Channel.objects.all()})
        _load_existing(batch, items)
        tally = _plan_delivery(batch, delivery, items)
        record = Reseal(
            unparsed=unparsed,
            requested_by=user,
            items=tally.items,
            duplicates=tally.duplicates,
            unparsed_again=tally.unparsed,
        )
        fields: dict[str, Scalar] = {
            "unparsed_seq": unparsed.entry_id,
            "delivery": delivery.pk,
            "items": tally.items,
            "duplicates": tally.duplicates,
            "unparsed": tally.unparsed,
        }
        batch.add(Fact("item.resealed", fields), record)
        try:
            with transaction.atomic():
                _write(batch)
        except Exception as exc:
            if _not_the_content(exc):
                raise
            reason = f"the current code still cannot seal it: {_error_name(exc)}"
            raise ResealRefused(reason) from exc
    return record


def _within(path: str, under: str) -> bool:
    return under == "$" or path == under or path.startswith((under + ".", under + "["))


@dataclass(frozen=True)
class LookupKeys:
    """The keys a batch looks up in the archive before planning. Messages, statuses and
    conversations are unique per channel, so each of their keys comes with the number
    (phone_number_id) of the item that named it."""

    wamids: set[tuple[str, str]]  # the messages'
    statuses: set[tuple[str, str]]  # the wamids the statuses are about
    participants: set[str]
    conversations: set[tuple[str, str]]  # the clients' keys and the groups'


def lookup_keys(items: list[Item]) -> LookupKeys:
    wamids: dict[str, set[tuple[str, str]]] = {"message": set(), "status": set()}
    conversations: set[tuple[str, str]] = set()
    participants: set[str] = set()
    for i in items:
        if i.kind in wamids and isinstance(i.raw, dict) and isinstance(i.raw.get("id"), str):
            wamids[i.kind].add((i.phone_number_id, i.raw["id"]))
        keys = _participant_keys(i)
        participants |= keys
        conversations |= {(i.phone_number_id, key) for key in keys | _group_keys(i)}
    return LookupKeys(wamids["message"], wamids["status"], participants, conversations)


def pending(size: int) -> QuerySet[Any]:
    """The ids of the oldest `size` queued deliveries (an index scan of a short table)."""
    return PendingDelivery.objects.order_by("delivery_id").values_list("delivery_id", flat=True)[
        :size
    ]


def _take(size: int) -> list[Delivery]:
    """The oldest `size` pending deliveries, taken off the queue in the caller's transaction
    (a rollback puts them back). A queued delivery that has a seal is only dropped."""
    ids = list(pending(size))
    if not ids:
        return []
    PendingDelivery.objects.filter(delivery_id__in=ids).delete()
    return list(Delivery.objects.filter(id__in=ids, seal__isnull=True).order_by("id"))


def existing_queries(channels: dict[str, Channel], keys: LookupKeys) -> dict[str, QuerySet[Any]]:
    """What a batch reads of the archive, by name (the capture benchmark EXPLAINs these).

    Messages, statuses and conversations are unique per channel, so each lookup names the
    batch's channels too: the (channel, ...) unique indexes then seek to every key, where a
    wamid or key alone can only be found by reading those indexes whole (growing with the
    archive). Keys go as array parameters (`_pairs`, `_any`), not thousand-placeholder IN
    lists."""
    ids = {number: channel.pk for number, channel in channels.items()}
    queries: dict[str, QuerySet[Any]] = {}
    # a message's wamid is looked up among messages, a status's among statuses: a batch of
    # 2,000 messages used to probe the statuses' index for all 2,000 as well
    if wamids := _known(keys.wamids, ids):
        queries["messages"] = Message.objects.filter(_pairs(Message, "wamid", wamids)).values_list(
            "channel_id", "wamid"
        )
    if statuses := _known(keys.statuses, ids):
        queries["statuses"] = StatusEvent.objects.filter(
            _pairs(StatusEvent, "wamid", statuses)
        ).values_list("channel_id", "wamid", "status", "occurred_at")
    if keys.participants:
        by_key = _any(Participant, "key", sorted(keys.participants))
        queries["participants"] = Participant.objects.filter(by_key)
        # by_key names messaging_participant, which values_list's participant__key joins: a
        # subquery instead ran once per profile row (168 ms at 1,000 participants)
        queries["profiles"] = (
            ParticipantProfile.objects.filter(by_key)
            .order_by("participant_id", "-id")
            .distinct("participant_id")
            .values_list("participant__key", "name", "username")
        )
        queries["conversations"] = Conversation.objects.filter(
            _pairs(Conversation, "key", _known(keys.conversations, ids))
        )
    return queries


def _known(keys: set[tuple[str, str]], ids: dict[str, int]) -> list[tuple[int, str]]:
    """(channel pk, key) for each key that came to a number the archive has a channel for."""
    return sorted((ids[number], key) for number, key in keys if number in ids)


def _column(model: type[models.Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)
    quote = connection.ops.quote_name
    return f"{quote(model._meta.db_table)}.{quote(str(field.column))}"


def _any(model: type[models.Model], name: str, values: list[Any]) -> RawSQL:
    """`field = ANY(values)` with the values as one array parameter (review/transcript.py's
    helper, here for the sequencer's lookups)."""
    # names from the model, the values a parameter: nothing from a delivery is SQL here
    sql = f"{_column(model, name)} = ANY(%s)"
    return RawSQL(sql, [values], output_field=models.BooleanField())  # noqa: S611


def _pairs(model: type[models.Model], name: str, pairs: list[tuple[int, str]]) -> RawSQL:
    """`(channel, field)` among `pairs`, joined from two array parameters, so that the plan is
    one probe of the (channel, field) unique index per pair whatever the statistics say.
    `channel = ANY(…) AND field = ANY(…)` left it to them: without a channel's share of the
    archive (a stale ANALYZE, a channel grown since) PostgreSQL read every message of the
    batch's channels and filtered them by the wamids, 4 s a batch at 10M (docs/SCALE.md §7p)."""
    columns = f"({_column(model, 'channel')}, {_column(model, name)})"  # the model's names
    sql = f"{columns} IN (SELECT * FROM unnest(%s::bigint[], %s::text[]))"  # noqa: S608
    arrays = [[channel for channel, _ in pairs], [key for _, key in pairs]]
    return RawSQL(sql, arrays, output_field=models.BooleanField())  # noqa: S611


def _load_existing(batch: Batch, items: list[Item]) -> None:
    """Read once what the archive already holds for every key these items touch."""
    queries = existing_queries(batch.channels, lookup_keys(items))
    if "messages" in queries:
        batch.messages = set(queries["messages"])
    if "statuses" in queries:
        batch.statuses = set(queries["statuses"])
    if "participants" in queries:
        batch.participants = {p.key: p for p in queries["participants"]}
        batch.profiles = {key: (name, username) for key, name, username in queries["profiles"]}
        batch.conversations = {(c.channel_id, c.key): c for c in queries["conversations"]}


def _participant_keys(item: Item) -> set[str]:
    if item.kind != "message" or not isinstance(item.raw, dict):
        return set()
    keys = {participant_key(*identity) for identity in [_client_identity(item)] if identity}
    for contact in item.contacts:
        wa_id, user_id = str(contact.get("wa_id", "")), str(contact.get("user_id", ""))
        if wa_id or user_id:
            keys.add(participant_key(wa_id, user_id))
    return keys


def _group_keys(item: Item) -> set[str]:
    if item.kind == "message" and isinstance(item.raw, dict) and item.raw.get("group_id"):
        return {f"group:{item.raw['group_id']}"}
    return set()


def _plan_delivery(batch: Batch, delivery: Delivery, items: list[Item]) -> Tally:
    tally = Tally()
    for item in items:
        tally.items += 1
        try:
            outcome = _plan_item(batch, delivery, item)
        except Exception as exc:  # planning is pure Python: whatever it raises is the item's
            reason = f"cannot read item: {type(exc).__name__}"
            outcome = _plan_unparsed(batch, delivery, item, reason, type(exc).__name__)
        if outcome == "duplicate":
            tally.duplicates += 1
        elif outcome == "unparsed":
            tally.unparsed += 1
    return tally


def _plan_item(batch: Batch, delivery: Delivery, item: Item) -> str:
    channel = batch.channels.get(item.phone_number_id)
    if item.kind == "unparsed":
        return _plan_unparsed(batch, delivery, item, item.reason)
    if item.kind == "event":
        return _plan_event(batch, channel, delivery, item)
    if channel is None:
        reason = f"unknown channel (phone_number_id {item.phone_number_id!r})"
        return _plan_unparsed(batch, delivery, item, reason)
    if not isinstance(item.raw, dict) or not isinstance(item.raw.get("id"), str):
        return _plan_unparsed(batch, delivery, item, f"{item.kind} without an id")
    refusal = _refusal(item)
    if refusal:
        return _plan_unparsed(batch, delivery, item, refusal)
    if item.kind == "status":
        return _plan_status(batch, channel, delivery, item)
    return _plan_message(batch, channel, delivery, item)


def _refusal(item: Item) -> str:
    """Why an item's identifiers cannot be archived as they are (hygiene.LIMITS)."""
    raw = item.raw
    where = {"phone_number_id": item.phone_number_id, "waba_id": item.waba_id}
    found = hygiene.refusal(raw) or hygiene.refusal({**where, "wa_id": item.counterpart})
    body, context = raw.get(str(raw.get("type", ""))), raw.get("context")
    if isinstance(body, dict):  # a media id; a reaction's, edit's or revocation's target
        found = found or hygiene.refusal({**body, "id": None, "media_id": body.get("id")})
    if isinstance(context, dict):  # the message a reply quotes
        found = found or hygiene.refusal({"message_id": context.get("id")})
    for contact in item.contacts:
        found = found or hygiene.refusal(contact)
    return found


def _plan_unparsed(
    batch: Batch, delivery: Delivery, item: Item, reason: str, error: str = ""
) -> str:
    raw = item.raw if isinstance(item.raw, bytes) else _json_bytes(item.raw)
    reason = hygiene.short_reason(reason)
    fields: dict[str, Scalar] = {"delivery": delivery.pk, "path": item.path}
    if error:
        fields["error"] = error
    fact = Fact("item.unparsed", fields, {"raw": raw, "reason": reason.encode()})
    record = UnparsedItem(delivery=delivery, path=item.path, reason=reason, error=error, raw=raw)
    batch.add(fact, record)
    logger.warning("delivery %s: unparsed item at %s", delivery.pk, item.path)
    return "unparsed"


def _plan_event(batch: Batch, channel: Channel | None, delivery: Delivery, item: Item) -> str:
    refusal = hygiene.refusal({"field": item.field_name, "waba_id": item.waba_id})
    if refusal:
        return _plan_unparsed(batch, delivery, item, refusal)
    name = item.field_name
    fact = Fact(
        "account.event",
        {"delivery": delivery.pk, "field": name, "phone_number_id": item.phone_number_id},
        {"item": _json_bytes(item.raw)},
    )
    record = AccountEvent(
        channel=channel, field=name, waba_id=item.waba_id, payload=item.raw, delivery=delivery
    )
    batch.add(fact, record)
    return "sealed"


def _plan_status(batch: Batch, channel: Channel, delivery: Delivery, item: Item) -> str:
    raw = item.raw
    occurred = cloud_api.timestamp(raw.get("timestamp"))
    status = str(raw.get("status", ""))
    if occurred is None or not status:
        return _plan_unparsed(batch, delivery, item, "status without a status or timestamp")
    key = (channel.pk, raw["id"], status, occurred)
    if key in batch.statuses:
        batch.duplicates.append(
            DuplicateItem(delivery=delivery, channel=channel, wamid=raw["id"], kind="status")
        )
        return "duplicate"
    batch.statuses.add(key)
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
    record = StatusEvent(
        channel=channel,
        wamid=raw["id"],
        status=status,
        occurred_at=occurred,
        recipient_id=str(raw.get("recipient_id", "")),
        payload=raw,
        delivery=delivery,
    )
    batch.add(fact, record)
    return "sealed"


def _plan_message(batch: Batch, channel: Channel, delivery: Delivery, item: Item) -> str:
    raw = item.raw
    if (channel.pk, raw["id"]) in batch.messages:
        batch.duplicates.append(
            DuplicateItem(delivery=delivery, channel=channel, wamid=raw["id"], kind="message")
        )
        return "duplicate"
    batch.messages.add((channel.pk, raw["id"]))
    client = _client_identity(item)
    if client is None:
        return _plan_unparsed(batch, delivery, item, "message without a sender or recipient")
    participant = _participant(batch, *client)
    for contact in item.contacts:
        _profile(batch, contact, delivery)
    conversation = _conversation(batch, channel, participant, str(raw.get("group_id", "")))
    sent_at = cloud_api.timestamp(raw.get("timestamp"))
    text = cloud_api.message_text(raw)
    kind = str(raw.get("type", ""))
    context = raw.get("context") if isinstance(raw.get("context"), dict) else {}
    fact = Fact(
        "message",
        {
            "delivery": delivery.pk,
            "phone_number_id": channel.phone_number_id,
            "direction": item.direction,
            "source": item.source,
            "type": kind,
            "sent_at": rfc3339(sent_at) if sent_at else None,
        },
        {"wamid": raw["id"].encode(), "item": _json_bytes(raw), "text": text.encode()},
    )
    record = Message(
        channel=channel,
        wamid=raw["id"],
        conversation=conversation,
        direction=item.direction,
        source=item.source,
        type=kind,
        sender=participant if item.direction == Direction.INBOUND else None,
        sent_at=sent_at,
        text=text,
        target_wamid=cloud_api.target_wamid(raw),
        context_wamid=str(context.get("id", "")),
        forwarded=bool(context.get("forwarded")),
        frequently_forwarded=bool(context.get("frequently_forwarded")),
        payload=raw,
        delivery=delivery,
    )
    batch.add(fact, record)
    return "sealed"


def _client_identity(item: Item) -> tuple[str, str] | None:
    """(wa_id, business-scoped user id) of the client this message is with."""
    raw = item.raw
    if item.direction == Direction.OUTBOUND:
        return (item.counterpart, "") if item.counterpart else None
    if item.source == "history":
        wa_id = str(raw.get("from", "")) or item.counterpart
        return (wa_id, "") if wa_id else None
    wa_id, user_id = str(raw.get("from", "")), str(raw.get("from_user_id", ""))
    if not wa_id and not user_id and item.contacts:
        wa_id = str(item.contacts[0].get("wa_id", ""))
        user_id = str(item.contacts[0].get("user_id", ""))
    return (wa_id, user_id) if wa_id or user_id else None


def _participant(batch: Batch, wa_id: str, user_id: str) -> Participant:
    """The participant, planning its creation (and sealing) when it is new."""
    key = participant_key(wa_id, user_id)
    if key not in batch.participants:
        participant = Participant(key=key, wa_id=wa_id, user_id=user_id)
        batch.participants[key] = participant
        batch.add(Fact("participant", {}, {"key": key.encode()}), participant)
    return batch.participants[key]


def _profile(batch: Batch, contact: dict[str, Any], delivery: Delivery) -> None:
    """A new profile row when a contact shows a name or username we have not seen for them."""
    profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else None
    name = str((profile or {}).get("name", ""))
    username = str((profile or {}).get("username", ""))
    wa_id, user_id = str(contact.get("wa_id", "")), str(contact.get("user_id", ""))
    if not (wa_id or user_id) or not (name or username):
        return
    participant = _participant(batch, wa_id, user_id)
    if batch.profiles.get(participant.key) == (name, username):
        return
    batch.profiles[participant.key] = (name, username)
    record = ParticipantProfile(
        participant=participant,
        name=name,
        username=username,
        parent_user_id=str(contact.get("parent_user_id", "")),
        seen_at=delivery.received_at,
    )
    fact = Fact("participant.profile", {}, {"name": name.encode(), "username": username.encode()})
    batch.add(fact, record)


def _conversation(
    batch: Batch, channel: Channel, participant: Participant, group: str
) -> Conversation:
    key = f"group:{group}" if group else participant.key
    if (channel.pk, key) not in batch.conversations:
        conversation = Conversation(
            channel=channel,
            key=key,
            group_id=group,
            participant=None if group else participant,
        )
        batch.conversations[channel.pk, key] = conversation
        fact = Fact(
            "conversation", {"phone_number_id": channel.phone_number_id}, {"key": key.encode()}
        )
        batch.add(fact, conversation)
    return batch.conversations[channel.pk, key]


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


def _seal(delivery: Delivery, tally: Tally) -> DeliverySeal:
    return DeliverySeal(
        delivery=delivery,
        sealed_at=timezone.now(),
        items=tally.items,
        duplicates=tally.duplicates,
        unparsed=tally.unparsed,
    )
