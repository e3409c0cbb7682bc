"""Retention, legal holds, disposition and GDPR requests.

Every captured ledger entry that carries personal content (a message, a status, a webhook body,
a participant's number or name, a media file…) gets one `RetentionRecord` in the transaction that
seals it, with the `retain_until` its channel's policy fixes. PostgreSQL keeps the rules
(retention/migrations/0002_rules.py):

- the runtime role may insert records and lengthen `retain_until`, never shorten it or change
  anything else, never delete a record;
- content is disposed of only by the database function `retention_dispose()`, owned by the owner
  role, which refuses any record inside retention or under an active hold.
"""

from typing import Any, ClassVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now

from archive.models import AppendOnlyModel, LedgerEntry, append_only_triggers
from messaging.models import Channel, Conversation

MAX_DAYS = 36_525  # 100 years: beyond it dates run past what the database and Python represent


class RetentionPolicy(models.Model):
    """How long records of some channels are kept, and the rule that requires it.

    A channel under several policies keeps its records for the longest of them; a channel under
    none follows the default policy (there is always exactly one).
    """

    name = models.CharField(max_length=200, unique=True)
    days = models.PositiveIntegerField(
        validators=[MaxValueValidator(MAX_DAYS)],
        help_text="Days a record is kept after it is sealed. 0 disposes of it at the next run.",
    )
    rule = models.TextField(
        help_text="The rule this implements, e.g. “FINRA 4511 / SEC 17a-4(b)(4): 6 years”."
    )
    channels = models.ManyToManyField(Channel, blank=True, related_name="retention_policies")
    is_default = models.BooleanField(
        "default", default=False, help_text="Applies to every channel no other policy names."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "retention policies"
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_policy"
            ),
            models.CheckConstraint(condition=Q(days__lte=MAX_DAYS), name="policy_days_bounded"),
        ]
        permissions = [
            ("apply_retention", "Plan, approve and run dispositions"),
            ("view_record_of_processing", "See the record of processing (GDPR Art. 30)"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.days} days)"


class LegalHold(models.Model):
    """A litigation or investigation hold: what it covers is never disposed of until released.

    `scope` is plain JSON: {"conversations": [ids], "participants": ["447…"], "query": {search
    page parameters}, "date_from": "YYYY-MM-DD", "date_to": "YYYY-MM-DD"}. Conversations,
    participants and the query each add messages; the dates, when given, narrow them all.
    """

    matter = models.CharField("matter name", max_length=200, unique=True)
    matter_number = models.CharField(max_length=100, blank=True)
    reason = models.TextField()
    custodians = models.TextField(blank=True, help_text="One per line: the people it concerns.")
    scope = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now())
    refreshed_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    release_reason = models.TextField(blank=True)

    class Meta:
        ordering = [F("released_at").asc(nulls_first=True), "-created_at"]  # active first
        permissions = [("manage_holds", "Create, change and release legal holds")]

    def __str__(self) -> str:
        return self.matter

    @property
    def active(self) -> bool:
        return self.released_at is None


class HoldItem(AppendOnlyModel):
    """A ledger entry a hold covers. Items are never removed: releasing the hold ends them all."""

    hold = models.ForeignKey(LegalHold, on_delete=models.PROTECT, related_name="items")
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")
    kind = models.CharField(max_length=32)

    class Meta:
        triggers = append_only_triggers()
        constraints = [
            models.UniqueConstraint(fields=["entry", "hold"], name="hold_item_once"),
        ]

    def __str__(self) -> str:
        return f"#{self.entry_id} in {self.hold_id}"

    @classmethod
    def message_seqs(cls, hold: "LegalHold | int") -> "models.QuerySet[HoldItem, dict[str, Any]]":
        """The seqs of the messages a hold covers (a subquery: search, exports, holds)."""
        return cls.objects.filter(hold=hold, kind="message").values("entry_id")


class Disposition(models.Model):
    """One disposition run: planned, perhaps waiting for a second administrator, then run in
    batches, each sealed as a `retention.disposition` ledger entry."""

    class State(models.TextChoices):
        AWAITING_APPROVAL = "awaiting", "awaiting approval"
        APPROVED = "approved"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        REJECTED = "rejected"

    state = models.CharField(max_length=16, choices=State.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    requested_at = models.DateTimeField(db_default=Now())
    # What the plan covered: records sealed before `upto_seq` that had expired at `cutoff`.
    upto_seq = models.BigIntegerField()
    cutoff = models.DateTimeField()
    planned = models.BigIntegerField()
    planned_by_kind = models.JSONField(default=dict)
    planned_by_policy = models.JSONField(default=dict)
    erasure = models.ForeignKey(
        "ErasureRequest", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    disposed = models.BigIntegerField(default=0)
    media_deleted = models.IntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"disposition {self.pk} ({self.get_state_display()})"


class RetentionRecord(models.Model):
    """How long one sealed entry's content must be kept, and whether it has been disposed of.

    Written by retention.assign in the transaction that seals the entry. The runtime role may
    lengthen `retain_until` (a later message extends its conversation and participant) and
    nothing else; the owner's `retention_dispose()` alone sets `disposed_at`.
    """

    # Columns the runtime role may UPDATE (archive/privileges.py grants exactly these).
    RUNTIME_UPDATE_COLUMNS: ClassVar[tuple[str, ...]] = ("retain_until", "policy_id")

    entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, primary_key=True, db_column="seq", related_name="+"
    )
    kind = models.CharField(max_length=32)
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, null=True, blank=True)
    # Indexed once, by retention_conversation below (the ForeignKey's own index was a copy).
    conversation = models.ForeignKey(
        Conversation, on_delete=models.PROTECT, null=True, blank=True, db_index=False
    )
    policy = models.ForeignKey(RetentionPolicy, on_delete=models.PROTECT)
    sealed_at = models.DateTimeField()
    retain_until = models.DateTimeField()
    disposed_at = models.DateTimeField(null=True, blank=True)
    disposition = models.ForeignKey(
        Disposition, on_delete=models.PROTECT, null=True, blank=True, related_name="records"
    )

    class Meta:
        db_table = "retention_record"
        indexes = [
            # what disposition looks for: undisposed records in expiry order
            models.Index(
                fields=["retain_until"],
                condition=Q(disposed_at__isnull=True),
                name="retention_due",
            ),
            models.Index(
                fields=["policy"], condition=Q(disposed_at__isnull=True), name="retention_live"
            ),
            models.Index(fields=["conversation"], name="retention_conversation"),
        ]

    def __str__(self) -> str:
        return f"#{self.entry_id} {self.kind} until {self.retain_until:%Y-%m-%d}"


class PendingDeletion(models.Model):
    """A stored media file whose record was disposed of, until its bytes are deleted.

    `retention_dispose()` writes these in the disposing transaction; the job deletes the bytes
    after commit and then the row (a crash in between leaves the row, and the next run retries).
    """

    storage_name = models.CharField(max_length=300)
    disposition = models.ForeignKey(Disposition, on_delete=models.PROTECT, null=True)
    created_at = models.DateTimeField(db_default=Now())
    # A deletion the store refused or could not reach stays, with why, and is retried by the
    # next run (database defaults: retention_dispose() inserts the rows in SQL).
    attempts = models.IntegerField(db_default=0)
    attempted_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(db_default="", blank=True)

    def __str__(self) -> str:
        return self.storage_name


class ObjectLock(models.Model):
    """What this archive last set on one stored object in the records store: its COMPLIANCE
    retain-until and its legal hold (retention/object_lock.py keeps them in line with the
    media file's retention record and holds). `error` says why the last attempt failed."""

    storage_name = models.CharField(max_length=300, primary_key=True)
    retain_until = models.DateTimeField(null=True, blank=True)
    held = models.BooleanField(default=False)
    applied_at = models.DateTimeField(null=True, blank=True)
    attempted_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "retention_objectlock"

    def __str__(self) -> str:
        return self.storage_name


class ErasureRequest(models.Model):
    """A data subject's request to erase (GDPR Art. 17), with what was decided and why."""

    class State(models.TextChoices):
        REFUSED = "refused", "refused while retention applies (scheduled)"
        PARTIAL = "partial", "partly carried out; the rest scheduled"
        CARRIED_OUT = "done", "carried out"
        NOTHING = "nothing", "nothing held"

    number = models.CharField(max_length=32, help_text="The subject's WhatsApp number, digits.")
    reference = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(db_default=Now())
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices)
    legal_ground = models.TextField(blank=True)
    # The entries about the subject when the request was received: the request is judged against
    # these (disposition blanks the number, so they could not be found again by it).
    covered = ArrayField(models.BigIntegerField(), default=list, blank=True)
    records = models.BigIntegerField(default=0)
    disposed = models.BigIntegerField(default=0)
    due_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last retained record expires."
    )
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"erasure request {self.pk} (+{self.number})"


# --- What other apps register with retention (owner-written data, read-only to the runtime) ----


class DisposableKind(models.Model):
    """A ledger kind that may have a retention record, and so be disposed of.

    retention_record_insert_guard() refuses a record of any other kind: audit entries (a hold, a
    disposition, a GDPR decision) are never disposable. Each app's migration registers the
    kinds it seals (retention/migrations/0007_registries.py for messaging's, bridge 0003 for
    the bridge's); the runtime role may only read them (archive/privileges.py).
    """

    RUNTIME_READ_ONLY: ClassVar[bool] = True

    kind = models.CharField(max_length=32, primary_key=True)
    app = models.CharField(max_length=100, help_text="The app whose migration registered it.")

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return self.kind


class Blanker(models.Model):
    """A function `f(p_seqs bigint[])` that retention_dispose() calls, by name order, to blank
    what another app keeps for the seqs it disposes of (e.g. `bridge_retention_blank`).

    It runs inside retention_dispose()'s SECURITY DEFINER context, so retention_dispose()
    calls only a function of that exact signature owned by the owner role, and refuses the
    whole disposal otherwise; the runtime role may only read this table.
    """

    RUNTIME_READ_ONLY: ClassVar[bool] = True

    function = models.CharField(max_length=63, primary_key=True)  # a PostgreSQL identifier
    app = models.CharField(max_length=100, help_text="The app whose migration registered it.")

    class Meta:
        ordering = ["function"]
        constraints = [
            models.CheckConstraint(
                condition=Q(function__regex=r"^[a-z_][a-z0-9_]*$"), name="blanker_is_a_name"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.function}(bigint[])"
