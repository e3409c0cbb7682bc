"""From sealed messages to notifications, and notifications out to their targets.

`plan()` reads messages in ledger order from a cursor (like the lexicon scan): every client
message becomes part of an email / Slack / Teams notification for its route, and every message,
both directions, a journal copy. Messages from one client that arrive before their notification
has gone share it (a burst is one email), and BRIDGE_BURST_SECONDS can hold a notification
back to gather more.

`send_due()` sends what is due, each notification locked while it is sent (so workers never send
one twice), with its state, attempts and last error recorded. Failures are retried with backoff;
staff notifications give up after BRIDGE_MAX_ATTEMPTS (listed on the reconciliation page), the
journal never does. An email notification waits up to BRIDGE_MEDIA_WAIT_SECONDS for the media of
its messages to be fetched, so that it can carry them.

Both run in the `bridge.tasks.run` task, woken after every sealed batch, sent message and fetched
attachment, and by a schedule every minute (the backstop for a lost wake-up).
"""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from archive.models import ChainHead
from exports import eml
from messaging.inbox import queue
from messaging.models import MEDIA_TYPES, PHONE_EXPORT, Direction, Message
from review.transcript import Row, decorate

from . import chat, mail
from .models import BridgeCursor, Notification, NotificationMessage, Route

logger = logging.getLogger(__name__)
CHUNK = 1000
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
MEDIA_RECHECK = timedelta(seconds=5)
Kind = Notification.Kind


def wake() -> None:
    """Queue a run (after sealed messages and stored media, messaging/hooks.py); the schedule
    is the backstop."""
    queue("bridge.tasks.run", "bridge")


class Routes:
    """Every active route, read once per planning pass."""

    def __init__(self) -> None:
        self.by_channel: dict[int, Route] = {}
        self.by_conversation: dict[int, Route] = {}
        for route in Route.objects.filter(active=True).prefetch_related("users"):
            if route.conversation_id is None:
                self.by_channel[route.channel_id] = route
            else:
                self.by_conversation[route.conversation_id] = route

    def notify(self, message: Message) -> Route | None:
        """Whose staff hear about this message: its conversation's route, else its channel's."""
        return self.by_conversation.get(message.conversation_id) or self.by_channel.get(
            message.channel_id
        )

    def journals(self, message: Message) -> list[Route]:
        """The routes whose journal address receives it, one per address."""
        found: dict[str, Route] = {}
        for route in (
            self.by_conversation.get(message.conversation_id),
            self.by_channel.get(message.channel_id),
        ):
            if route is not None and route.journal_address:
                found.setdefault(route.journal_address.lower(), route)
        return list(found.values())


def email_recipients(route: Route) -> list[str]:
    addresses = [*route.email_recipients]
    addresses += [u.email for u in route.users.all() if u.is_active and u.email]
    unique: dict[str, str] = {}  # by lower case, the first spelling kept, in order
    for address in addresses:
        unique.setdefault(address.lower(), address)
    return list(unique.values())


def staff_kinds(route: Route) -> list[str]:
    kinds: list[str] = []
    if email_recipients(route):
        kinds.append(Kind.EMAIL)
    if route.slack_url:
        kinds.append(Kind.SLACK)
    if route.teams_url:
        kinds.append(Kind.TEAMS)
    return kinds


# What `_plan` and `Routes` read of a message: not its text, search vector or payload.
PLANNED = ("id", "entry_id", "channel_id", "conversation_id", "direction", "source")


def plan() -> int:
    """Turn messages sealed since the last pass into notifications; return how many messages
    were planned.

    With no active route the cursor moves to the head without reading a message (none would
    have become a notification or a journal copy), as the lexicon scan does (docs/SCALE.md §7j)."""
    planned = 0
    while True:
        with transaction.atomic():
            cursor, _ = BridgeCursor.objects.select_for_update().get_or_create(pk=1)
            # every seq below the committed head is committed (appends hold the head lock)
            head = ChainHead.objects.values_list("size", flat=True).first() or 0
            if not Route.objects.filter(active=True).exists():
                cursor.planned_through = head - 1
                cursor.save(update_fields=["planned_through"])
                return planned
            batch = list(
                Message.objects.filter(entry_id__gt=cursor.planned_through, entry_id__lt=head)
                .only(*PLANNED)
                .order_by("entry_id")[:CHUNK]
            )
            if batch:
                _plan(batch, Routes())
            cursor.planned_through = batch[-1].entry_id if len(batch) == CHUNK else head - 1
            cursor.save(update_fields=["planned_through"])
            planned += len(batch)
        if len(batch) < CHUNK:
            return planned


# Sources of messages that are archived (and journaled) without notifying staff.
QUIET = frozenset({"history", PHONE_EXPORT})


def _plan(messages: list[Message], routes: Routes) -> None:
    grouped: dict[tuple[int, int, str], list[Message]] = defaultdict(list)
    journal: list[tuple[Route, Message]] = []
    for message in messages:
        journal.extend((route, message) for route in routes.journals(message))
        staff = routes.notify(message)
        # staff hear about what clients write now, not about a history sync of old chats or a
        # phone's chat export (imports/); the journal still receives both, each marked as such
        if staff is None or message.direction != Direction.INBOUND or message.source in QUIET:
            continue
        for kind in staff_kinds(staff):
            grouped[staff.pk, message.conversation_id, kind].append(message)
    links: list[NotificationMessage] = []
    now = timezone.now()
    by_route = {r.pk: r for r in [*routes.by_channel.values(), *routes.by_conversation.values()]}
    for (route_id, conversation_id, kind), group in grouped.items():
        waiting = (
            Notification.objects.select_for_update(skip_locked=True)
            .filter(
                route_id=route_id,
                conversation_id=conversation_id,
                kind=kind,
                state=Notification.State.PENDING,
                attempts=0,
            )
            .order_by("-id")
            .first()
        )
        if waiting is None:
            waiting = Notification.objects.create(
                route=by_route[route_id],
                conversation_id=conversation_id,
                kind=kind,
                due_at=now + timedelta(seconds=settings.BRIDGE_BURST_SECONDS),
            )
        links.extend(NotificationMessage(notification=waiting, message=m) for m in group)
    for route, message in journal:
        notification = Notification.objects.create(
            route=route,
            conversation_id=message.conversation_id,
            kind=Kind.JOURNAL,
            target=route.journal_address,
            due_at=now,
        )
        links.append(NotificationMessage(notification=notification, message=message))
    NotificationMessage.objects.bulk_create(links, ignore_conflicts=True)


RUN_LOCK = 0x436C5769_42726467  # "ClWiBrdg": one bridge run at a time (bridge/tasks.py)
RUN_SECONDS = 1.0


def run(seconds: float | None = None) -> int:
    """Plan, then send what is due (staff notifications first), planning again between batches;
    with `seconds`, stop after about that long. Return how many notifications were sent."""
    deadline = None if seconds is None else time.monotonic() + seconds
    sent = 0
    while True:
        plan()
        count = send_due(limit=SEND_BATCH if deadline is not None else None)
        sent += count
        if count == 0 or (deadline is not None and time.monotonic() >= deadline):
            return sent


def work_left() -> bool:
    """Messages not yet planned, or notifications due now."""
    head = ChainHead.objects.values_list("size", flat=True).first() or 0
    planned = BridgeCursor.objects.values_list("planned_through", flat=True).first()
    if planned is None or planned < head - 1:
        unplanned = Message.objects.filter(entry_id__gt=planned if planned is not None else -1)
        if unplanned.filter(entry_id__lt=head).exists():
            return True
    due = Notification.objects.filter(state=Notification.State.PENDING, due_at__lte=timezone.now())
    return due.exists()


def unplanned() -> int:
    """How many ledger entries the planner has not read yet (the reconciliation page's "not yet
    read by the bridge")."""
    head = ChainHead.objects.values_list("size", flat=True).first() or 0
    cursor = BridgeCursor.objects.values_list("planned_through", flat=True).first()
    return max(head - 1 - (cursor if cursor is not None else -1), 0)


def retry(notification: Notification) -> bool:
    """Send a notification again now, whether given up on or waiting for its next attempt.
    False when it was sent meanwhile (a conditional update: a sent one is never sent again)."""
    updated = (
        Notification.objects.filter(pk=notification.pk)
        .exclude(state=Notification.State.SENT)
        .update(state=Notification.State.PENDING, due_at=timezone.now())
    )
    if updated:
        wake()
    return bool(updated)


SEND_BATCH = 50


@dataclass
class Prepared:
    """What a batch of notifications needs, read once: their messages, decorated per channel
    (review/transcript.decorate: one set of queries for the whole batch), and clients' names.
    Measured: one notification at a time cost ~11 queries and 33 ms each, too slow for 50
    messages/s (an email and a journal copy each)."""

    messages: dict[int, list[Message]] = field(default_factory=dict)
    rows: dict[int, Row] = field(default_factory=dict)
    names: mail.Names = field(default_factory=lambda: mail.Names({}, {}))

    @classmethod
    def of(cls, due: list[Notification]) -> "Prepared":
        prepared = cls()
        links = (
            NotificationMessage.objects.filter(notification__in=due)
            .select_related(
                "message__entry",
                "message__conversation__channel",
                "message__conversation__participant",
                "message__conversation__entry",
            )
            .order_by("message__entry_id")
        )
        by_channel: dict[int, dict[int, Message]] = defaultdict(dict)
        for link in links:
            prepared.messages.setdefault(link.notification_id, []).append(link.message)
            by_channel[link.message.channel_id][link.message.pk] = link.message
        for messages in by_channel.values():
            first = next(iter(messages.values()))
            for row in decorate(first.conversation, list(messages.values())):
                prepared.rows[row.message.pk] = row
        people = {
            m.conversation.participant_id
            for ms in prepared.messages.values()
            for m in ms
            if m.conversation.participant_id is not None
        }
        prepared.names = mail.Names.of(people)
        return prepared


def send_due(limit: int | None = None) -> int:
    """Send every due notification, SEND_BATCH at a time. The batch's rows are locked while
    they are sent (other workers skip them); each notification's outcome is recorded in its own
    savepoint, so one that fails never undoes another's record. A crash before the batch
    commits can only send its emails again, never lose one."""
    sent = handled = 0
    connections: dict[bool, Any] = {}
    waiting: list[int] = []
    try:
        while limit is None or handled < limit:
            with transaction.atomic():
                due = _pick(waiting)
                if not due:
                    return sent
                handled += len(due)
                prepared = Prepared.of(due)
                for notification in due:
                    with transaction.atomic():
                        outcome = _send(notification, prepared, connections)
                    if outcome is None:
                        waiting.append(notification.pk)
                    sent += outcome is True
        return sent
    finally:
        for connection in connections.values():
            try:
                connection.close()
            except Exception:  # a broken connection is already closed enough
                logger.debug("closing an email connection failed", exc_info=True)


def _pick(waiting: list[int]) -> list[Notification]:
    """The next batch, locked: staff notifications before journal copies (staff wait for them;
    the journal only needs them all), each kind oldest due first."""
    pending = (
        Notification.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(state=Notification.State.PENDING, due_at__lte=timezone.now())
        .exclude(pk__in=waiting)
        .select_related("route", "conversation__channel", "conversation__participant")
        .prefetch_related("route__users")
        .order_by("due_at", "id")
    )
    due = list(pending.exclude(kind=Kind.JOURNAL)[:SEND_BATCH])
    return due or list(pending.filter(kind=Kind.JOURNAL)[:SEND_BATCH])


def _send(
    notification: Notification, prepared: Prepared, connections: dict[bool, Any]
) -> bool | None:
    """True when sent, False when it failed (recorded), None when it waits for media."""
    messages = prepared.messages.get(notification.pk, [])
    carries_media = notification.kind == Kind.JOURNAL or (
        notification.kind == Kind.EMAIL and not notification.route.metadata_only
    )
    if carries_media and _waiting_for_media(messages, prepared.rows):
        notification.due_at = timezone.now() + MEDIA_RECHECK
        notification.save(update_fields=["due_at"])
        return None
    if notification.kind != Kind.JOURNAL and not notification.route.active:
        notification.state = Notification.State.CANCELLED
        notification.last_error = "the route was deactivated before this was sent"
        notification.save(update_fields=["state", "last_error"])
        return False
    try:
        reference = _deliver(notification, messages, prepared, connections)
    except Exception as exc:  # any failure is recorded and retried, never lost
        _failed(notification, exc)
        return False
    notification.state = Notification.State.SENT
    notification.sent_at = timezone.now()
    notification.attempts += 1
    notification.reference = reference[:300]
    notification.last_error = ""
    notification.save(update_fields=["state", "sent_at", "attempts", "reference", "last_error"])
    return True


def _waiting_for_media(messages: list[Message], rows: dict[int, Row]) -> bool:
    """Whether a message's media is still being fetched, and young enough to wait for."""
    wait = timedelta(seconds=settings.BRIDGE_MEDIA_WAIT_SECONDS)
    now = timezone.now()
    return any(
        now < m.entry.sealed_at + wait
        for m in messages
        if m.type in MEDIA_TYPES and rows[m.pk].attachment is None
    )


def _open(connections: dict[bool, Any], journal: bool) -> Any:
    if journal not in connections:
        connection = mail.connection(journal=journal)
        connection.open()
        connections[journal] = connection
    return connections[journal]


def _smtp(connections: dict[bool, Any], journal: bool, email: EmailMessage) -> str:
    connection = _open(connections, journal)
    try:
        if connection.send_messages([email]) != 1:
            raise ConnectionError("the email was not sent (no recipients were accepted)")
    except Exception:
        connections.pop(journal, None)  # a new connection for the next one
        try:
            connection.close()
        except Exception:
            logger.debug("closing a failed email connection failed", exc_info=True)
        raise
    return str(email.extra_headers.get("Message-ID", "")) or "accepted"


def _deliver(
    notification: Notification,
    messages: list[Message],
    prepared: Prepared,
    connections: dict[bool, Any],
) -> str:
    route, conversation = notification.route, notification.conversation
    if not messages:
        return "nothing left to send"
    if notification.kind == Kind.JOURNAL:
        message = messages[0]
        copy = mail.journal_email(
            prepared.rows[message.pk], notification.target or route.journal_address, prepared.names
        )
        _smtp(connections, True, copy)
        return eml.message_id(conversation.channel, message.wamid)  # the copy's Message-ID
    if notification.kind == Kind.EMAIL:
        recipients = email_recipients(route)
        if not recipients:
            return "no recipients left on the route"
        rows = [prepared.rows[m.pk] for m in messages]
        email = mail.notification_email(
            conversation, recipients, route.metadata_only, rows, prepared.names
        )
        return _smtp(connections, False, email)
    client = mail.client_name(conversation, prepared.names)
    link = mail.portal_link(conversation)
    if notification.kind == Kind.SLACK:
        payload = chat.slack_payload(client, conversation, messages, link, route.metadata_only)
        return chat.post(route.slack_url, payload)
    payload = chat.teams_payload(client, conversation, messages, link, route.metadata_only)
    return chat.post(route.teams_url, payload)


def _failed(notification: Notification, error: Exception) -> None:
    notification.attempts += 1
    notification.last_error = f"{type(error).__name__}: {error}"[:2000]
    permanent = isinstance(error, chat.ChatError) and error.permanent
    journal = notification.kind == Kind.JOURNAL
    if not journal and (permanent or notification.attempts >= settings.BRIDGE_MAX_ATTEMPTS):
        notification.state = Notification.State.FAILED
    else:
        wait = min(FIRST_RETRY * 2 ** min(notification.attempts - 1, 8), LONGEST_RETRY)
        notification.due_at = timezone.now() + wait
    notification.save(update_fields=["attempts", "last_error", "state", "due_at"])
    logger.warning(
        "bridge: %s notification %s failed (attempt %s): %s",
        notification.kind,
        notification.pk,
        notification.attempts,
        type(error).__name__,
    )
