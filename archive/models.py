"""The archive's tables. Their public shape is documented in docs/LEDGER.md.

Append-only tables subclass `AppendOnlyModel`: the runtime database role may only SELECT and INSERT
on them (archive/privileges.py grants that after every migrate) and triggers refuse UPDATE, DELETE
and TRUNCATE as a second layer, for whoever connects.
"""

from typing import Any

import pgtrigger
from django.db import models


def append_only_triggers() -> list[Any]:
    """Triggers that refuse changes to rows once written (the second layer behind privileges)."""
    return [
        pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        pgtrigger.Trigger(
            name="no_truncate",
            when=pgtrigger.Before,
            operation=pgtrigger.Truncate,
            level=pgtrigger.Statement,
            func="RAISE EXCEPTION 'archive: % is append-only; TRUNCATE refused', TG_TABLE_NAME;",
        ),
    ]


class AppendOnlyModel(models.Model):
    """Marker base: rows are written once and never changed by the runtime role."""

    class Meta:
        abstract = True


class LedgerEntry(AppendOnlyModel):
    """One sealed fact. Written only by archive.ledger.append()."""

    seq = models.BigIntegerField(primary_key=True)
    kind = models.TextField()
    envelope = models.BinaryField()
    leaf_hash = models.BinaryField()
    link = models.BinaryField(unique=True)
    sealed_at = models.DateTimeField()

    class Meta:
        db_table = "archive_ledgerentry"
        ordering = ["seq"]
        verbose_name_plural = "ledger entries"
        triggers = append_only_triggers()
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=0), name="ledger_seq_nonnegative"),
        ]
        permissions = [
            ("view_integrity", "Can see the archive's integrity status"),
            ("view_evidence", "Can see ledger evidence and the verifier key"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}"


class Content(AppendOnlyModel):
    """The committed content of a ledger entry, with its salt: the part disposition may delete.

    The envelope holds only `sha256(tag ‖ salt ‖ content)`; this row lets anyone recompute it.
    """

    entry = models.ForeignKey(
        LedgerEntry, on_delete=models.PROTECT, db_column="seq", related_name="contents"
    )
    name = models.TextField()
    salt = models.BinaryField()
    content = models.BinaryField()

    class Meta:
        db_table = "archive_content"
        triggers = append_only_triggers()
        constraints = [
            models.UniqueConstraint(fields=["entry", "name"], name="content_unique_per_entry"),
        ]

    def __str__(self) -> str:
        return f"#{self.entry_id} {self.name}"


class ChainHead(models.Model):
    """The single row appenders lock; it caches the last link and the Merkle frontier.

    It is not evidence: verify_archive recomputes everything from the ledger itself.
    """

    id = models.SmallIntegerField(primary_key=True, default=1)
    size = models.BigIntegerField(default=0)
    link = models.BinaryField()
    frontier = models.BinaryField(default=b"")

    class Meta:
        db_table = "archive_chainhead"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="chainhead_single")]
        triggers = [pgtrigger.Protect(name="no_delete", operation=pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"chain head at size {self.size}"


class MerkleNode(AppendOnlyModel):
    """Hashes of complete Merkle subtrees of 2**level leaves, for level >= NODE_MIN_LEVEL.

    Stored as the chain grows so that proofs read a few rows instead of rehashing the world.
    """

    pk = models.CompositePrimaryKey("level", "index")
    level = models.SmallIntegerField()
    index = models.BigIntegerField()
    hash = models.BinaryField()

    class Meta:
        db_table = "archive_merklenode"
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return f"node {self.level}/{self.index}"


class Checkpoint(AppendOnlyModel):
    """A signed statement of the Merkle root over the first `tree_size` entries."""

    tree_size = models.BigIntegerField(primary_key=True)
    root = models.BinaryField()
    note = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        db_table = "archive_checkpoint"
        ordering = ["tree_size"]
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return f"checkpoint at {self.tree_size}"


class VerificationRun(AppendOnlyModel):
    """The recorded outcome of one verify_archive run (shown on the home page)."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    intact = models.BooleanField()
    entries = models.BigIntegerField()
    checkpoints = models.IntegerField()
    contents = models.BigIntegerField()
    first_bad_seq = models.BigIntegerField(null=True, blank=True)
    problem = models.TextField(blank=True)
    trigger = models.CharField(max_length=32)

    class Meta:
        db_table = "archive_verificationrun"
        ordering = ["-finished_at"]
        triggers = append_only_triggers()

    def __str__(self) -> str:
        outcome = "intact" if self.intact else "BROKEN"
        return f"verification {self.finished_at:%Y-%m-%d %H:%M} {outcome}"
