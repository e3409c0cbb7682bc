"""The bridge's tables: routes (who hears about which client), notifications (each hop to staff
or to the journal, with its delivery state), reply emails as received, and what was sent to
clients on the staff's behalf.

Routes and notification states are ordinary, audited work tables. What is evidence is sealed:
every reply email (its raw bytes, and whether it was sent or refused and why), every send
request before it goes to Meta, and every message Meta accepted (bridge/outbound.py).
"""

import pgtrigger
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from archive.models import LedgerEntry
from messaging.models import Channel, Conversation, MediaFile, Message


class Route(models.Model):
    """Where a channel's (or one conversation's) client messages go, and who may answer them.

    A conversation's own route (an assigned relationship manager) replaces its channel's for
    notifications; the journal address of either receives every message, both directions."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="routes")
    conversation = models.OneToOneField(
        Conversation, on_delete=models.PROTECT, null=True, blank=True, related_name="route"
    )
    name = models.CharField(max_length=200, blank=True)
    email_recipients = ArrayField(models.EmailField(), default=list, blank=True)
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="bridge_routes",
        help_text="Portal users who receive these notifications at their email address and "
        "may reply to them.",
    )
    reply_senders = ArrayField(
        models.EmailField(),
        default=list,
        blank=True,
        help_text="Other addresses allowed to reply (recipients and users always may).",
    )
    # Incoming-webhook URLs carry their own secret: write-only in the admin, never rendered.
    slack_url = models.TextField("Slack incoming-webhook URL", blank=True)
    teams_url = models.TextField("Teams incoming-webhook URL", blank=True)
    journal_address = models.EmailField(blank=True)
    metadata_only = models.BooleanField(
        default=False,
        help_text="Notifications carry only who wrote and a link into the portal, no text or "
        "media.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel"],
                condition=Q(conversation__isnull=True),
                name="route_one_per_channel",
            ),
        ]
        permissions = [("view_reconciliation", "Can see what is not yet journaled or notified")]

    def __str__(self) -> str:
        return self.name or (
            f"conversation {self.conversation_id}" if self.conversation_id else str(self.channel)
        )


class MessageTemplate(models.Model):
    """A template Meta approved for a channel: what can be sent outside the 24-hour window."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="templates")
    name = models.CharField(max_length=512)
    language = models.CharField(max_length=16, default="en")
    body = models.TextField(
        blank=True, help_text="The approved text, with {{1}}, {{2}}… for its parameters."
    )
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "name", "language"], name="template_once_per_language"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    @property
    def parameters(self) -> int:
        import re

        return len(set(re.findall(r"\{\{\s*(\d+)\s*\}\}", self.body)))


class Notification(models.Model):
    """One hop of one or more messages to one target, retried until accepted (the journal) or
    until BRIDGE_MAX_ATTEMPTS (staff notifications)."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        SLACK = "slack"
        TEAMS = "teams"
        JOURNAL = "journal"

    class State(models.TextChoices):
        PENDING = "pending"  # not tried yet, or failed and waiting to be retried
        SENT = "sent"  # accepted by the SMTP server or the webhook
        FAILED = "failed"  # gave up after BRIDGE_MAX_ATTEMPTS (never for the journal)
        CANCELLED = "cancelled"  # its route was deactivated before it was sent

    route = models.ForeignKey(Route, on_delete=models.PROTECT, related_name="notifications")
    conversation = models.ForeignKey(Conversation, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    # the journal address a journal copy goes to, fixed when it is planned
    target = models.EmailField(blank=True)
    messages = models.ManyToManyField(Message, through="NotificationMessage", related_name="+")
    created_at = models.DateTimeField(db_default=Now())
    due_at = models.DateTimeField(db_default=Now())
    attempts = models.IntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # The email's Message-ID, or the webhook's answer.
    reference = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["due_at", "id"], condition=Q(state="pending"), name="notification_due"
            ),
            models.Index(fields=["kind", "state"], name="notification_kind_state"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.state} ({self.pk})"


class NotificationMessage(models.Model):
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE)
    message = models.ForeignKey(Message, on_delete=models.PROTECT, related_name="notifications")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "message"], name="notification_message_once"
            )
        ]

    def __str__(self) -> str:
        return f"message {self.message_id} in notification {self.notification_id}"


class BridgeCursor(models.Model):
    """How far the planner has read the ledger (one row)."""

    planned_through = models.BigIntegerField(default=-1)

    def __str__(self) -> str:
        return f"planned through seq {self.planned_through}"


def _raw_unchanged() -> list[pgtrigger.Trigger]:
    # Named append_only_* so that retention_dispose() (and only it) may blank the raw bytes.
    return [
        pgtrigger.Protect(
            name="append_only_raw",
            operation=pgtrigger.Update,
            condition=pgtrigger.AnyChange("raw", "received_at", "via", "envelope_from"),
        ),
        pgtrigger.Protect(name="append_only_delete", operation=pgtrigger.Delete),
    ]


class InboundEmail(models.Model):
    """A reply email exactly as received (gateway, provider webhook or IMAP), committed before
    the sender's server is told it was accepted; then the outcome of processing it."""

    class Via(models.TextChoices):
        SMTP = "smtp"
        WEBHOOK = "webhook"
        IMAP = "imap"

    class State(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"  # claimed; if a crash leaves it here, it is never resent
        SENT = "sent"  # everything in it went to the client
        PARTIAL = "partial"  # some of it went (Meta refused the rest): the sender was told
        UNCONFIRMED = "unconfirmed"  # a send Meta never confirmed (not resent): the sender was told
        REFUSED = "refused"  # nothing was sent: the sender was told why
        IGNORED = "ignored"  # an auto-reply or bounce: nothing sent, nobody told (no loops)

    received_at = models.DateTimeField(db_default=Now())
    via = models.CharField(max_length=8, choices=Via.choices)
    envelope_from = models.CharField(max_length=320, blank=True)
    envelope_to = ArrayField(models.CharField(max_length=320), default=list)
    raw = models.BinaryField()
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    reason = models.TextField(blank=True)
    sender = models.CharField(max_length=320, blank=True)  # the From address
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    conversation = models.ForeignKey(
        Conversation, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    message_id = models.CharField(max_length=998, blank=True)
    entry = models.ForeignKey(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, db_column="seq"
    )
    processed_at = models.DateTimeField(null=True, blank=True)

    # The runtime role may update only these (archive/privileges.py): the raw email, its
    # envelope and arrival are the evidence, never changed but by retention_dispose().
    RUNTIME_UPDATE_COLUMNS = (
        "state",
        "reason",
        "sender",
        "user_id",
        "conversation_id",
        "message_id",
        "seq",
        "processed_at",
    )

    class Meta:
        triggers = _raw_unchanged()
        indexes = [
            models.Index(fields=["id"], condition=Q(state="pending"), name="inbound_email_pending"),
            models.Index(fields=["message_id"], name="inbound_email_message_id"),
        ]

    def __str__(self) -> str:
        return f"reply email {self.pk} ({self.state})"


class Outbound(models.Model):
    """One message sent to a client through the Cloud API on a staff member's behalf: its
    request is sealed before it is sent, Meta's answer after (as the archived Message)."""

    class State(models.TextChoices):
        SENDING = "sending"  # sealed, being sent
        SENT = "sent"  # Meta accepted it: `message` is the archived message
        FAILED = "failed"  # Meta refused it (sealed as message.send_failed)
        UNKNOWN = "unknown"  # interrupted mid-send: it may or may not have gone; never resent

    class Source(models.TextChoices):
        EMAIL = "email"
        PORTAL = "portal"

    conversation = models.ForeignKey(Conversation, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=8, choices=Source.choices)
    email = models.ForeignKey(
        InboundEmail, on_delete=models.PROTECT, null=True, blank=True, related_name="outbound"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    sender = models.CharField(max_length=320, blank=True)  # the staff member's address
    # the portal form's one-time key: a second submission of the same form sends nothing
    submission = models.CharField(max_length=64, blank=True, db_index=True)
    type = models.CharField(max_length=16)  # text, image, video, audio, document, template
    request = models.JSONField()  # the body POSTed to /{phone-number-id}/messages
    media = models.ForeignKey(MediaFile, on_delete=models.PROTECT, null=True, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.SENDING)
    error = models.TextField(blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    send_entry = models.ForeignKey(
        LedgerEntry, on_delete=models.PROTECT, related_name="+", db_column="send_seq"
    )
    result_entry = models.ForeignKey(
        LedgerEntry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_column="result_seq",
    )
    message = models.OneToOneField(
        Message, on_delete=models.PROTECT, null=True, blank=True, related_name="bridge_send"
    )

    class Meta:
        permissions = [("reply_to_client", "Can reply to clients from the portal")]

    def __str__(self) -> str:
        return f"{self.type} to conversation {self.conversation_id} ({self.state})"
