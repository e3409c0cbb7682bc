"""Evidence exports: one row per requested export, moved PENDING → RUNNING → DONE / FAILED /
CANCELLED by its django-q2 job (exports/jobs.py), and DONE → EXPIRED when its file is removed.

The row stays after expiry: who asked for what, when, against which checkpoint, and the SHA-256
of what was produced. Requesting, finishing and downloading an export are also sealed in the
ledger (exports/jobs.py), so that this record of production is itself tamper-evident.
"""

import uuid

from django.conf import settings
from django.db import models


class Export(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"
        EXPIRED = "expired"

    class Format(models.TextChoices):
        PDF = "pdf", "PDF/A transcript"
        EML = "eml", "EML (one email per message)"
        RSMF = "rsmf", "Relativity RSMF 2.0"
        CSV = "csv", "CSV"
        BUNDLE = "bundle", "Evidence bundle (everything, with proofs)"

    class ScopeKind(models.TextChoices):
        CONVERSATION = "conversation"
        SEARCH = "search"
        PARTICIPANT = "participant"
        HOLD = "hold"  # every message a legal hold covers (exports/scope.py)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="exports"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    format = models.CharField(max_length=16, choices=Format.choices)
    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices)
    scope = models.JSONField()  # exports.scope.Scope.to_json()
    scope_label = models.CharField(max_length=300)  # as shown in lists, fixed at request time
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    cancel_requested = models.BooleanField(default=False)
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    message_count = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.IntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    checkpoint_size = models.BigIntegerField(null=True, blank=True)  # the tree it proves against
    file_name = models.CharField(max_length=300, blank=True)  # <pk>/<name> in the exports store
    file_size = models.BigIntegerField(null=True, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    requested_seq = models.BigIntegerField(null=True, blank=True)  # ledger entry of the request
    completed_seq = models.BigIntegerField(null=True, blank=True)  # ledger entry of the result

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["requested_by", "-requested_at"])]
        permissions = [
            ("create_export", "Can create evidence exports and download their own"),
            ("view_all_exports", "Can see and download every user's exports"),
        ]

    def __str__(self) -> str:
        return f"{self.get_format_display()} of {self.scope_label}"

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        if not self.progress_total:
            return 0
        return min(99, int(100 * self.progress_done / self.progress_total))

    @property
    def active(self) -> bool:
        return self.state in (self.State.PENDING, self.State.RUNNING)
