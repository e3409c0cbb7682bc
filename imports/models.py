"""Import jobs: one per uploaded chat export, moved through analysis, the user's confirmation and
the import itself (imports/pipeline.py). Mutable bookkeeping, not records: what was imported is
sealed in the ledger (messaging.ChatExport, messaging.ImportedMessage and the `import.started` /
`import.finished` facts); this row is the progress bar, the resume cursor and the report."""

from django.conf import settings
from django.db import models

from messaging.models import ChatExport, Conversation


class ImportJob(models.Model):
    class State(models.TextChoices):
        ANALYSING = "analysing"
        READY = "ready"  # analysed: the preview waits for the user's confirmation
        NEEDS_DATE_ORDER = "needs_date_order"  # as ready, but the user must choose the order
        REFUSED = "refused"  # not an export, or bad input: nothing but the upload was sealed
        QUEUED = "queued"
        RUNNING = "running"
        CANCELLING = "cancelling"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class DateOrder(models.TextChoices):
        DMY = "dmy", "day/month/year"
        MDY = "mdy", "month/day/year"
        YMD = "ymd", "year/month/day"

    export = models.OneToOneField(ChatExport, on_delete=models.PROTECT, related_name="job")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.ANALYSING)
    detected = models.JSONField(default=dict)  # imports.parsing.Detected, as a dict
    date_order = models.CharField(max_length=3, choices=DateOrder.choices, blank=True)
    date_order_evidence = models.TextField(blank=True)
    preview = models.JSONField(default=dict)
    mapping = models.JSONField(default=dict)  # author -> {"as": ...}, as confirmed
    chat_name = models.CharField(max_length=250, blank=True)
    one_to_one = models.BooleanField(default=False)
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    identical_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    lines_total = models.IntegerField(default=0)
    lines_done = models.IntegerField(default=0)
    entries_total = models.IntegerField(default=0)
    next_line = models.IntegerField(default=1)  # resume cursor: first line of the next batch
    counts = models.JSONField(default=dict)  # created / linked / skipped / attachments
    started_entry = models.BigIntegerField(null=True, blank=True)  # seq of import.started
    finished_entry = models.BigIntegerField(null=True, blank=True)  # seq of import.finished
    error = models.TextField(blank=True)
    attempts = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("import_chat", "Can import phone chat exports")]

    def __str__(self) -> str:
        return f"import of {self.export_id}"

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        if not self.lines_total:
            return 0
        return min(99, int(100 * self.lines_done / self.lines_total))

    @property
    def active(self) -> bool:
        return self.state in (
            self.State.ANALYSING,
            self.State.QUEUED,
            self.State.RUNNING,
            self.State.CANCELLING,
        )


class ImportProblem(models.Model):
    """A warning about one line of an export (a flag, a missing attachment, a mixed format):
    the rows of the report CSV (line, kind, problem)."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="problems")
    line = models.IntegerField(null=True, blank=True)
    kind = models.CharField(max_length=40)
    problem = models.TextField()

    class Meta:
        ordering = ["job", "line", "id"]
        indexes = [models.Index(fields=["job", "line"], name="import_problem_line")]

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"
