"""Capture records: channels, the delivery inbox, and what the sequencer seals from deliveries.

Everything below `Channel` is append-only for the runtime role (archive.models.AppendOnlyModel):
a delivery's raw bytes, its seal, and every participant, conversation, message, status and event
row are written once, each pointing at the ledger entry that seals it. Edits, revocations,
reactions and statuses are new rows, never updates.
"""

import pgtrigger
from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import ExpressionWrapper, F, Func, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now, Upper

from archive.models import AppendOnlyModel, LedgerEntry, append_only_triggers


class Channel(models.Model):
    """A WhatsApp Business number on the Cloud API."""

    name = models.CharField(max_length=200)
    phone_number_id = models.CharField(max_length=64, unique=True)
    display_number = models.CharField(max_length=32, blank=True)
    waba_id = models.CharField("WABA id", max_length=64, blank=True)
    # Write-only in the admin; never rendered, logged or exported.
    access_token = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.display_number or self.phone_number_id})"


class Delivery(AppendOnlyModel):
    """One signed webhook POST exactly as received: committed before Meta gets its 200."""

    received_at = models.DateTimeField(db_default=Now())
    body = models.BinaryField()
    headers = models.JSONField(default=dict)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        triggers = [
            *append_only_triggers(),
            # every new delivery joins the sequencer's queue (PendingDelivery), however it is
            # inserted: the webhook view, a benchmark's bulk_create, a restore
            pgtrigger.Trigger(
                name="queue_pending",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                level=pgtrigger.Statement,
                referencing=pgtrigger.Referencing(new="new_rows"),  # type: ignore[no-untyped-call]
                func="INSERT INTO messaging_pendingdelivery (delivery_id)"
                " SELECT id FROM new_rows; RETURN NULL;",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk}"


class PendingDelivery(models.Model):
    """A delivery waiting for its seal: the sequencer's work queue, so that finding the next
    batch reads this short table instead of anti-joining every delivery ever received with its
    seal (25 ms at 31,000 deliveries, growing with the archive: issue 20).

    A row is added by Delivery's `queue_pending` trigger and deleted by the sequencer in the
    transaction that seals its delivery, so a batch rolled back leaves it queued. The backlog
    alarm (messaging/health.py) reads the queue too, so a row deleted without its seal would hide
    a delivery from both for ever: `leaves_with_seal` refuses that at commit, whoever deletes.
    Not evidence, so an ordinary table otherwise (the runtime role may delete from it)."""

    delivery = models.OneToOneField(
        Delivery, on_delete=models.DO_NOTHING, primary_key=True, related_name="+"
    )

    class Meta:
        triggers = [
            pgtrigger.Trigger(
                name="leaves_with_seal",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                timing=pgtrigger.Deferred,  # the sequencer takes the row before it seals
                func="IF NOT EXISTS (SELECT 1 FROM messaging_deliveryseal"
                " WHERE delivery_id = OLD.delivery_id) THEN"
                " RAISE EXCEPTION 'messaging: delivery % left the queue without its seal',"
                " OLD.delivery_id USING ERRCODE = 'integrity_constraint_violation';"
                " END IF; RETURN NULL;",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.delivery_id} pending"


class DeliverySeal(AppendOnlyModel):
    """The sequencer's receipt for a delivery; a delivery without one is pending."""

    delivery = models.OneToOneField(
        Delivery, on_delete=models.PROTECT, primary_key=True, related_name="seal"
    )
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")
    sealed_at = models.DateTimeField()
    items = models.IntegerField()
    duplicates = models.IntegerField()
    unparsed = models.IntegerField()

    class Meta:
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return f"seal of delivery {self.delivery_id}"


class DuplicateItem(AppendOnlyModel):
    """A message or status a delivery repeated (Meta retries): counted, not stored twice, but
    linked to the delivery so that the raw body follows the original's retention, holds and
    erasure (retention/)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.PROTECT, related_name="duplicates")
    channel = models.ForeignKey("Channel", on_delete=models.PROTECT)
    wamid = models.CharField(max_length=250)
    kind = models.CharField(max_length=16)  # message or status

    class Meta:
        triggers = append_only_triggers()
        indexes = [models.Index(fields=["channel", "wamid"], name="duplicate_item_wamid")]

    def __str__(self) -> str:
        return f"{self.kind} {self.wamid} again in delivery {self.delivery_id}"


class Participant(AppendOnlyModel):
    """A WhatsApp user, by phone-number id (wa_id) or, failing that, business-scoped user id."""

    key = models.CharField(max_length=200, unique=True)
    wa_id = models.CharField(max_length=64, blank=True)
    user_id = models.CharField(max_length=200, blank=True)
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        triggers = append_only_triggers()
        # review/search.py finds partial numbers ("4471") with a trigram index
        indexes = [GinIndex(OpClass("wa_id", name="gin_trgm_ops"), name="participant_number_trgm")]

    def __str__(self) -> str:
        return self.wa_id or self.user_id


class ParticipantProfile(AppendOnlyModel):
    """A name or username a participant showed, kept as history (a new row when it changes)."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="profiles")
    name = models.TextField(blank=True)
    username = models.TextField(blank=True)
    parent_user_id = models.CharField(max_length=200, blank=True)
    seen_at = models.DateTimeField()
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        triggers = append_only_triggers()
        # review/search.py finds names by any part of them, case-insensitively
        indexes = [GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="profile_name_trgm")]

    def __str__(self) -> str:
        return self.name or self.username


class Conversation(AppendOnlyModel):
    """One per channel and participant, or per channel and group."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="conversations")
    key = models.CharField(max_length=250)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, null=True, blank=True)
    group_id = models.CharField(max_length=250, blank=True)
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        triggers = append_only_triggers()
        constraints = [
            models.UniqueConstraint(fields=["channel", "key"], name="conversation_unique_key")
        ]

    def __str__(self) -> str:
        return self.group_id or str(self.participant)


class Direction(models.TextChoices):
    INBOUND = "in", "inbound"
    OUTBOUND = "out", "outbound"


# Message.source of a message brought in from a phone's chat export (imports/): every view and
# export marks it, and the bridge notifies nobody of it.
PHONE_EXPORT = "phone_export"


# The message types whose payload names a media file to fetch (messaging/media.py).
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")


# A message's adjacent word pairs ("the_and"), each a lexeme: what a phrase's words must be
# (review/search.py). The SQL function is messaging 0020's.
WORD_PAIRS = Func(F("search"), function="message_word_pairs", output_field=SearchVectorField())
# The channel as search filters it (review/search.py): an expression the foreign key's index on
# channel_id does not serve, and message_channel_sent below does, with the time.
SEARCH_CHANNEL = ExpressionWrapper(F("channel_id") + 0, output_field=models.BigIntegerField())


class Message(AppendOnlyModel):
    """Every item Meta reports as a message, whatever its type: text and media, but also
    reactions, edits and revocations (which point at their target by `target_wamid`)."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT)
    wamid = models.CharField(max_length=250)
    # Indexed by message_transcript and message_conversation_seq, which lead with it: an index
    # of its own was one more insertion a message and 22 bytes (docs/SCALE.md §2).
    conversation = models.ForeignKey(
        Conversation, on_delete=models.PROTECT, related_name="messages", db_index=False
    )
    direction = models.CharField(max_length=3, choices=Direction.choices)
    source = models.CharField(max_length=32)  # messages, smb_message_echoes, history
    type = models.CharField(max_length=64)
    sender = models.ForeignKey(Participant, on_delete=models.PROTECT, null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    text = models.TextField(blank=True)  # body, caption or reply title: what search reads
    target_wamid = models.CharField(max_length=250, blank=True)  # reaction, edit, revoke
    context_wamid = models.CharField(max_length=250, blank=True)  # the message replied to
    forwarded = models.BooleanField(default=False)
    frequently_forwarded = models.BooleanField(default=False)
    payload = models.JSONField()  # the item exactly as Meta sent it (or as we sent it: bridge/)
    # The webhook that carried it; none for a message ClientWindow sent itself (source "api").
    delivery = models.ForeignKey(Delivery, on_delete=models.PROTECT, null=True, blank=True)
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")
    # What review/search.py matches: the text and a document's file name, in the `simple`
    # configuration (no stemming: a compliance search must find the word that was written).
    # A stored generated column, measured 6-17x faster than an expression index.
    search = models.GeneratedField(
        expression=RawSQL(
            "to_tsvector('simple'::regconfig, text || ' ' || "
            "coalesce(payload #>> '{document,filename}', ''))",
            [],
        ),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        triggers = append_only_triggers()
        constraints = [
            models.UniqueConstraint(fields=["channel", "wamid"], name="message_once_per_channel")
        ]
        indexes = [
            # transcripts page through a conversation in time order, undated messages first:
            # review/transcript.py's ASC reads it forwards, its DESC backwards (a plain
            # (sent_at, id) index sorts NULLS LAST and cannot serve either: measured as a sort
            # of the whole conversation, 40-70 ms for 5,000 messages)
            models.Index(
                F("conversation"),
                F("sent_at").asc(nulls_first=True),
                F("id"),
                name="message_transcript",
            ),
            # the API pages a conversation in ledger order (api/messages.py): a seek, where the
            # seq index alone walks every other conversation's messages between two of its own
            models.Index(fields=["conversation", "entry"], name="message_conversation_seq"),
            # reactions, edits and revocations are looked up by the message they point at
            models.Index(fields=["channel", "target_wamid"], name="message_target"),
            # newest-first search (read backwards, stopping at a page), exports, the dashboard
            models.Index(F("sent_at").asc(nulls_first=True), F("id"), name="message_sent"),
            # the same in one channel, as search writes its channel (`channel_id + 0`, review/
            # search.py): a burst on another channel is not read through (messaging 0022)
            models.Index(
                SEARCH_CHANNEL,
                F("sent_at").asc(nulls_first=True),
                F("id"),
                name="message_channel_sent",
            ),
            # the words, and the channel beside them (btree_gin), which a phrase in one
            # channel reads with them in one scan when written as a bigint (messaging 0023,
            # review/search.py: in_channel); a query without a channel reads its words alone
            GinIndex(SEARCH_CHANNEL, F("search"), name="message_channel_search"),
            # phrases: the rows where the words stand side by side (messaging 0020)
            GinIndex(WORD_PAIRS, name="message_phrase_pairs"),
            # the media still to fetch (messaging/media.py, every minute, and the health page's
            # count) are read among the messages that carry media, oldest first: without it a
            # scan of every message (3.6 s at 10M, docs/SCALE.md §7c)
            models.Index(fields=["id"], condition=Q(type__in=MEDIA_TYPES), name="message_media"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.wamid}"


class ConversationSummary(models.Model):
    """What the conversation list shows and sorts by, kept up to date by the sequencer in the
    same transaction as the messages (conversations themselves are append-only)."""

    conversation = models.OneToOneField(
        Conversation, on_delete=models.PROTECT, primary_key=True, related_name="summary"
    )
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT)
    message_count = models.IntegerField(default=0)
    inbound_count = models.IntegerField(default=0)
    first_message_at = models.DateTimeField(null=True)
    last_message_at = models.DateTimeField(null=True)
    last_message = models.ForeignKey(
        "Message", on_delete=models.PROTECT, null=True, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(
                models.F("last_message_at").desc(nulls_last=True),
                models.F("conversation").desc(),
                name="summary_recent",
            )
        ]

    def __str__(self) -> str:
        return f"summary of conversation {self.conversation_id}"


class StatusEvent(AppendOnlyModel):
    """One status Meta reported for an outbound message: history, never overwritten."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, db_index=False)  # status_once
    wamid = models.CharField(max_length=250)
    status = models.CharField(max_length=32)
    occurred_at = models.DateTimeField()
    recipient_id = models.CharField(max_length=250, blank=True)
    payload = models.JSONField()
    delivery = models.ForeignKey(Delivery, on_delete=models.PROTECT)
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        triggers = append_only_triggers()
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "wamid", "status", "occurred_at"], name="status_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.status} {self.wamid}"


class AccountEvent(AppendOnlyModel):
    """Any webhook change that is not a message or status: kept whole, by field."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, null=True, blank=True)
    field = models.CharField(max_length=100)
    waba_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField()
    delivery = models.ForeignKey(Delivery, on_delete=models.PROTECT)
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return self.field


class UnparsedItem(AppendOnlyModel):
    """Something in a delivery the sequencer could not turn into a record: kept whole and listed
    for administrators, never blocking the rest of the delivery."""

    delivery = models.ForeignKey(Delivery, on_delete=models.PROTECT)
    path = models.CharField(max_length=200)
    reason = models.TextField()
    # the exception's class when reading or sealing raised ("" when the parser said why)
    error = models.CharField(max_length=100, blank=True, default="")
    raw = models.BinaryField()  # bytes, exactly as they came: text cannot hold every body
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class Reseal(AppendOnlyModel):
    """An administrator's re-reading of an unparsed item by the current code. The records it
    made point at the item's original delivery; the item itself stays as it was sealed."""

    unparsed = models.ForeignKey(UnparsedItem, on_delete=models.PROTECT, related_name="reseals")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    items = models.IntegerField()
    duplicates = models.IntegerField()
    unparsed_again = models.IntegerField()
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return f"re-seal of unparsed item {self.unparsed_id}"


class RejectedWebhook(models.Model):
    """Counters of refused webhook POSTs per day and reason (no body is ever kept)."""

    day = models.DateField()
    reason = models.CharField(max_length=64)
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "reason"], name="rejection_counter")]

    def __str__(self) -> str:
        return f"{self.day} {self.reason}: {self.count}"


class MediaFile(AppendOnlyModel):
    """Media bytes, stored once per content in Django storage under their SHA-256."""

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    mime_type = models.CharField(max_length=200)
    storage_name = models.CharField(max_length=300)
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return self.sha256


class Attachment(AppendOnlyModel):
    """The outcome of fetching a message's media: stored, or why it never can be."""

    class Outcome(models.TextChoices):
        STORED = "stored"
        UNAVAILABLE = "unavailable"  # Meta no longer serves it (expired or unknown id)
        REFUSED = "refused"  # too large, a redirect, a foreign host, or a hash that never matched

    message = models.OneToOneField(Message, on_delete=models.PROTECT, related_name="attachment")
    media_id = models.CharField(max_length=200)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    file = models.ForeignKey(MediaFile, on_delete=models.PROTECT, null=True, blank=True)
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return f"{self.outcome} {self.media_id}"


class MediaAttempt(models.Model):
    """One failed try at fetching a message's media (the retry schedule reads these)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="media_attempts")
    attempted_at = models.DateTimeField(auto_now_add=True)
    error = models.TextField()

    def __str__(self) -> str:
        return f"{self.attempted_at}: {self.error}"


class Wakeup(models.Model):
    """Whether a wake-up of a background task is waiting in the queue (messaging/inbox.py)."""

    func = models.CharField(max_length=200, primary_key=True)
    queued = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.func}: {'queued' if self.queued else 'idle'}"


class BacklogAlarm(models.Model):
    """Whether the backlog alarm is raised (one row, id 1): the processes that check the backlog
    share it, so only the one that raises an episode logs it (messaging/health.py)."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    raised_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"backlog alarm raised at {self.raised_at}" if self.raised_at else "no backlog alarm"


class ChatExport(AppendOnlyModel):
    """A phone's "Export chat" file (.txt or .zip) exactly as uploaded, sealed before it is parsed
    (imports/). Its bytes are a `MediaFile` in the records store; this row says whose phone it
    came from, who uploaded it and the time zone its wall-clock times are read in."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="chat_exports")
    file = models.ForeignKey(MediaFile, on_delete=models.PROTECT, related_name="+")
    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    custodian = models.CharField(max_length=200)  # the employee whose phone it came from
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField()
    time_zone = models.CharField(max_length=64)  # IANA name, as declared by the uploader
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return f"{self.file_name} ({self.custodian})"


class ImportedMessage(AppendOnlyModel):
    """One entry of a chat export as that export shows it, sealed as `message.imported`.

    `message` is the archive's message this entry is: one it brought in (`created`, then
    `message.source` is "phone_export" and both share this entry's seq), or one archived before
    (a captured message, or the same message from another employee's export), which it is linked
    to instead of being counted twice. Each export's view (author as written, text, lines) is
    kept in the sealed contents either way."""

    export = models.ForeignKey(ChatExport, on_delete=models.PROTECT, related_name="entries")
    message = models.ForeignKey(Message, on_delete=models.PROTECT, related_name="imported_as")
    created = models.BooleanField()
    first_line = models.IntegerField()
    last_line = models.IntegerField()
    author = models.TextField(blank=True)  # as exported; "" for an authorless (system) line
    local_time = models.CharField(max_length=32)  # naive ISO 8601, as exported
    kind = models.CharField(max_length=32)
    flags = models.JSONField(default=list)
    # (conversation, minute, author's identity, body without marks or file names): what two
    # employees' exports of one conversation have in common (imports/matching.py)
    match_key = models.CharField(max_length=64)
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        triggers = append_only_triggers()
        constraints = [
            models.UniqueConstraint(fields=["export", "first_line"], name="imported_line_once")
        ]
        indexes = [models.Index(fields=["match_key"], name="imported_match_key")]

    def __str__(self) -> str:
        return f"line {self.first_line} of export {self.export_id}"
