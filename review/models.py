"""The reviewers' records.

Tags, lexicon and sampling policies, flags and saved searches are mutable work items: changes to
them are recorded by django-auditlog (review/audit.py). What supervision must be able to prove
later is append-only for the runtime role (archive.models.AppendOnlyModel): every review decision
and comment (each also sealed in the ledger) and every access event.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Now

from archive.models import AppendOnlyModel, LedgerEntry, append_only_triggers
from messaging.models import Channel, Conversation, Message

from .terms import TermKind, term_problem

COLOUR = RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour is # and six hexadecimal digits.")


class Severity(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Tag(models.Model):
    """A label administrators define and reviewers put on conversations and messages."""

    name = models.CharField(max_length=60, unique=True)
    colour = models.CharField(max_length=7, default="#4a6fa5", validators=[COLOUR])
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ConversationTag(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.PROTECT, related_name="tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    added_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "tag"], name="conversation_tag_once")
        ]

    def __str__(self) -> str:
        return f"{self.tag} on conversation {self.conversation_id}"


class MessageTag(models.Model):
    message = models.ForeignKey(Message, on_delete=models.PROTECT, related_name="tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    added_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "tag"], name="message_tag_once")]

    def __str__(self) -> str:
        return f"{self.tag} on message {self.message_id}"


class LexiconPolicy(models.Model):
    """Terms, phrases and regular expressions that flag a message for review when it matches."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM)
    case_sensitive = models.BooleanField(default=False)
    whole_word = models.BooleanField(default=True)
    # None chosen means every channel.
    channels = models.ManyToManyField(Channel, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "lexicon policies"

    def __str__(self) -> str:
        return self.name


class LexiconTerm(models.Model):
    Kind = TermKind

    policy = models.ForeignKey(LexiconPolicy, on_delete=models.CASCADE, related_name="terms")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.TERM)
    value = models.CharField(max_length=500)

    def __str__(self) -> str:
        return self.value

    def clean(self) -> None:
        problem = term_problem(self.kind, self.value)
        if problem:
            raise ValidationError({"value": problem})


class LexiconScan(models.Model):
    """How far the lexicon has read the ledger (one row): new messages are scanned once."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    scanned_through = models.BigIntegerField(default=-1)  # the last ledger seq read

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="lexicon_scan_single")]

    def __str__(self) -> str:
        return f"lexicon scanned through seq {self.scanned_through}"


class SamplingPolicy(models.Model):
    """A share of each period's conversations, drawn at random for review."""

    class Period(models.TextChoices):
        DAY = "day"
        WEEK = "week"
        MONTH = "month"

    name = models.CharField(max_length=120, unique=True)
    percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(0.01), MaxValueValidator(100)],
        help_text="Share of the period's active conversations drawn, in percent.",
    )
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.WEEK)
    channels = models.ManyToManyField(Channel, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "sampling policies"

    def __str__(self) -> str:
        return self.name


class SamplingDraw(models.Model):
    """One period's draw for a sampling policy: made once, whatever the schedule does."""

    policy = models.ForeignKey(SamplingPolicy, on_delete=models.PROTECT, related_name="draws")
    period_start = models.DateField()
    period_end = models.DateField()
    population = models.IntegerField()
    drawn = models.IntegerField()
    drawn_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["policy", "period_start"], name="sampling_draw_once")
        ]

    def __str__(self) -> str:
        return f"{self.policy} {self.period_start}"


class Flag(models.Model):
    """An item in the review queue: a message a lexicon matched, a conversation a sampling draw
    picked, or something a reviewer raised by hand."""

    class Source(models.TextChoices):
        LEXICON = "lexicon"
        SAMPLING = "sampling"
        MANUAL = "manual"

    class State(models.TextChoices):
        OPEN = "open"
        ESCALATED = "escalated"
        COMPLIANT = "compliant"
        NOT_COMPLIANT = "not_compliant", "not compliant"

    conversation = models.ForeignKey(Conversation, on_delete=models.PROTECT, related_name="flags")
    message = models.ForeignKey(
        Message, on_delete=models.PROTECT, null=True, blank=True, related_name="flags"
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    lexicon_policy = models.ForeignKey(
        LexiconPolicy, on_delete=models.PROTECT, null=True, blank=True, related_name="flags"
    )
    sampling_draw = models.ForeignKey(
        SamplingDraw, on_delete=models.PROTECT, null=True, blank=True, related_name="flags"
    )
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM)
    matched = models.JSONField(default=list, blank=True)  # the lexicon terms that matched
    note = models.TextField(blank=True)  # why a reviewer raised it
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_flags",
    )
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="raised_flags",
    )
    raised_at = models.DateTimeField(db_default=Now())
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "lexicon_policy"],
                condition=models.Q(lexicon_policy__isnull=False),
                name="lexicon_flag_once",
            ),
            models.UniqueConstraint(
                fields=["conversation", "sampling_draw"],
                condition=models.Q(sampling_draw__isnull=False),
                name="sampling_flag_once",
            ),
        ]
        indexes = [models.Index(fields=["state", "-raised_at"])]
        permissions = [
            ("read_archive", "Read conversations and search the archive"),
            ("tag_archive", "Tag conversations and messages"),
            ("raise_flag", "Raise flags for review"),
            ("decide_flag", "Claim, comment on and decide flags"),
        ]

    def __str__(self) -> str:
        return f"flag {self.pk} ({self.get_source_display()}, {self.get_state_display()})"

    @property
    def is_open(self) -> bool:
        return self.state in (self.State.OPEN, self.State.ESCALATED)


class ReviewDecision(AppendOnlyModel):
    """Who decided what about a flag, when and why: sealed in the ledger as the evidence of
    supervision (FINRA 3110)."""

    class Outcome(models.TextChoices):
        COMPLIANT = "compliant"
        NOT_COMPLIANT = "not_compliant", "not compliant"
        ESCALATED = "escalated"

    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, related_name="decisions")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_decisions"
    )
    escalated_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="escalations",
    )
    decided_at = models.DateTimeField()
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        ordering = ["decided_at", "id"]
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} by {self.decided_by}"


class FlagComment(AppendOnlyModel):
    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    text = models.TextField()
    created_at = models.DateTimeField()
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, db_column="seq")

    class Meta:
        ordering = ["created_at", "id"]
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return f"comment by {self.author} on flag {self.flag_id}"


class AccessEvent(AppendOnlyModel):
    """Somebody looked: a conversation opened, a search run, a file downloaded. Never edited."""

    class Action(models.TextChoices):
        VIEW_CONVERSATION = "view_conversation", "viewed conversation"
        SEARCH = "search", "searched"
        DOWNLOAD_MEDIA = "download_media", "downloaded media"
        VIEW_FLAG = "view_flag", "viewed flag"
        REQUEST_EXPORT = "request_export", "requested export"
        DOWNLOAD_EXPORT = "download_export", "downloaded export"
        # Accounts (issue 17): who signed in and how, and what happened to their credentials.
        LOGIN = "login", "signed in"
        LOGOUT = "logout", "signed out"
        LOGIN_FAILED = "login_failed", "failed to sign in"
        LOCKED_OUT = "locked_out", "was locked out"
        MFA_ADDED = "mfa_added", "added a second factor"
        MFA_REMOVED = "mfa_removed", "removed a second factor"
        MFA_FAILED = "mfa_failed", "failed a second-factor check"
        REAUTHENTICATED = "reauthenticated", "confirmed their identity"
        TOKEN_ISSUED = "token_issued", "issued an API token"
        TOKEN_REVOKED = "token_revoked", "revoked an API token"
        TOKEN_REFUSED = "token_refused", "presented a refused API token"
        # Imports (issue 18): who brought a phone's chat export into the archive.
        UPLOAD_CHAT_EXPORT = "upload_chat_export", "uploaded a chat export"
        VIEW_IMPORT = "view_import", "viewed an import"
        DOWNLOAD_IMPORT_REPORT = "download_import_report", "downloaded an import report"
        # The API's feeds (issue 19): one row per request that returned records, not per poll.
        READ_FEED = "read_feed", "read the change feed"
        READ_EVENTS = "read_events", "read the access events feed"

    # None: an event with no known account (a failed sign-in under a name nobody has).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )
    username = models.CharField(max_length=150)  # as it was then
    at = models.DateTimeField(db_default=Now())
    address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        triggers = append_only_triggers()
        indexes = [models.Index(fields=["-at"]), models.Index(fields=["user", "-at"])]

    # The table also has `xact xid8` (the writing transaction's id, review/migrations/0005),
    # outside the model: Django has no xid8 field and only api/events.py's SQL reads it.

    def __str__(self) -> str:
        return f"{self.username} {self.get_action_display()} {self.object_type} {self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        adding = self._state.adding
        super().save(*args, **kwargs)
        if adding:  # every writer uses objects.create(): the syslog sink sees every event
            from review import security_log  # here: it imports this module

            security_log.after_commit(self)


class SavedSearch(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_searches"
    )
    name = models.CharField(max_length=120)
    query = models.TextField()  # the search page's query string, as it was saved
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="saved_search_name_once")
        ]

    def __str__(self) -> str:
        return self.name
