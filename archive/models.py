"""The archive's tables. Their public shape is documented in docs/LEDGER.md.

Append-only tables subclass `AppendOnlyModel`: the runtime database role may only SELECT and INSERT
on them (archive/privileges.py grants that after every migrate) and triggers refuse UPDATE, DELETE
and TRUNCATE as a second layer, for whoever connects.
"""

from typing import Any

import pgtrigger
from django.db import models


def append_only_triggers() -> list[Any]:
    """Triggers that refuse changes to rows once written (the second layer behind privileges).

    `append_only` fires once per UPDATE or DELETE statement, before it touches a row, and refuses
    it whatever it matches: a statement matching no row is refused too, as privileges refuse it
    to the runtime role (no code path issues one: every foreign key of these tables is PROTECT,
    and rows are only ever inserted). The per-row trigger it replaced ran a PL/pgSQL call and
    pgtrigger's ignore check (a subtransaction) for every row retention_dispose() deletes or
    blanks: ~37 % of a disposition batch (issue 20). retention_dispose() still passes it the
    same way, by naming every `pgtrigger_append_only_*` trigger in `pgtrigger.ignore` for its
    own statements; pgtrigger runs that check at statement level as at row level. Not
    pgtrigger.Protect(level=Statement): that is an AFTER trigger over transition tables, which
    copies every deleted or changed row first. A table partitioned later needs the trigger on
    each partition too (a statement naming a partition fires only the partition's triggers).
    """
    return [
        pgtrigger.Trigger(
            name="append_only",
            when=pgtrigger.Before,
            operation=pgtrigger.Update | pgtrigger.Delete,
            level=pgtrigger.Statement,
            func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
        ),
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
    link = models.BinaryField()  # the chain check makes each one new (archive 0010)
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

    # No index of its own: content_unique_per_entry (seq, name) leads with it, and a second
    # btree on seq cost 50 bytes and one more index insertion per content (three a message).
    entry = models.ForeignKey(
        LedgerEntry,
        on_delete=models.PROTECT,
        db_column="seq",
        related_name="contents",
        db_index=False,
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
    # "full" re-checks every entry; "incremental" only those from `from_seq` on (archive/verify.py).
    # Database defaults too: rows written by SQL from before these columns stay valid.
    mode = models.CharField(max_length=16, default="full", db_default="full")
    from_seq = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        db_table = "archive_verificationrun"
        ordering = ["-finished_at"]
        triggers = append_only_triggers()

    def __str__(self) -> str:
        outcome = "intact" if self.intact else "BROKEN"
        return f"verification {self.finished_at:%Y-%m-%d %H:%M} {outcome}"


class VerifiedCheckpoint(AppendOnlyModel):
    """What an intact verification run established at a checkpoint: entries [0, tree_size) were
    checked (by this run from `run.from_seq`, and before that by the run it started from), with
    the root, the last link and the Merkle frontier it recomputed there.

    An incremental run starts from the newest of these: the frontier must still give the signed
    checkpoint's root and the link must still be the ledger's, so a forged row can only claim
    that a genuinely signed prefix was checked. Written only by archive.verify.record_run().
    """

    run = models.OneToOneField(
        VerificationRun, on_delete=models.PROTECT, related_name="verified_checkpoint"
    )
    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.PROTECT, db_column="tree_size", related_name="verifications"
    )
    root = models.BinaryField()
    link = models.BinaryField()  # the link of entry tree_size - 1
    frontier = models.BinaryField()  # CompactRange.to_bytes() at tree_size
    verified_by = models.TextField()  # the OS user and host that ran the verification

    class Meta:
        db_table = "archive_verifiedcheckpoint"
        ordering = ["-checkpoint_id", "-id"]
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return f"verified up to checkpoint {self.checkpoint_id}"


class CheckpointTimestamp(AppendOnlyModel):
    """An RFC 3161 timestamp token over the SHA-256 of a checkpoint's signed note (its `note`
    column, every byte), from a TSA in TSA_URLS, verified on receipt (archive/timestamps.py)."""

    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.PROTECT, db_column="tree_size", related_name="timestamps"
    )
    token = models.BinaryField()  # DER TimeStampToken: the CMS ContentInfo (SignedData)
    tsa_url = models.TextField()
    gen_time = models.DateTimeField()  # the token's TSTInfo genTime
    received_at = models.DateTimeField()

    class Meta:
        db_table = "archive_checkpointtimestamp"
        ordering = ["checkpoint_id", "received_at"]
        triggers = append_only_triggers()

    def __str__(self) -> str:
        return f"timestamp of checkpoint {self.checkpoint_id} at {self.gen_time:%Y-%m-%d %H:%M:%S}"


class Cosignature(AppendOnlyModel):
    """A witness's C2SP tlog-cosignature of a checkpoint (archive/witness.py): the whole
    signature line as the witness returned it, and what it says."""

    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.PROTECT, db_column="tree_size", related_name="cosignatures"
    )
    witness = models.TextField()  # the cosigner's key name
    key_id = models.BinaryField()  # 4 bytes
    line = models.TextField()  # "— <name> <base64(key id ‖ timestamp ‖ signature)>\n"
    signed_at = models.DateTimeField()  # the cosignature's own timestamp
    received_at = models.DateTimeField()

    class Meta:
        db_table = "archive_cosignature"
        ordering = ["checkpoint_id", "witness"]
        triggers = append_only_triggers()
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint", "witness", "key_id"], name="cosignature_once_per_witness"
            ),
        ]

    def __str__(self) -> str:
        return f"cosignature of checkpoint {self.checkpoint_id} by {self.witness}"


class Publication(AppendOnlyModel):
    """A checkpoint's note or timestamp token written outside the database
    (archive/publication.py): where, and the SHA-256 of the bytes written."""

    class Artifact(models.TextChoices):
        NOTE = "note", "signed note"
        TIMESTAMP = "timestamp", "timestamp token"

    class Target(models.TextChoices):
        RECORDS = "records", "records store"
        DIRECTORY = "directory", "CHECKPOINT_DIR"

    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.PROTECT, db_column="tree_size", related_name="publications"
    )
    artifact = models.TextField(choices=Artifact.choices)
    target = models.TextField(choices=Target.choices)
    location = models.TextField()  # the object key, or the file's path
    sha256 = models.TextField()
    published_at = models.DateTimeField()

    class Meta:
        db_table = "archive_publication"
        ordering = ["checkpoint_id", "artifact", "target"]
        triggers = append_only_triggers()
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint", "artifact", "target", "location"],
                name="publication_once_per_place",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.artifact} of checkpoint {self.checkpoint_id} in {self.target}"


class AnchorTask(models.Model):
    """Work still to do to anchor a checkpoint outside the database, with its retry state
    (archive/anchoring.py). Not evidence: a row is deleted when its duty is done."""

    class Duty(models.TextChoices):
        TIMESTAMP = "timestamp", "RFC 3161 timestamp"
        PUBLISH_NOTE = "publish.note", "publish the note"
        PUBLISH_TIMESTAMP = "publish.timestamp", "publish the timestamp token"
        COSIGN = "cosign", "witness cosignature"

    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.PROTECT, db_column="tree_size", related_name="anchor_tasks"
    )
    duty = models.TextField(choices=Duty.choices)
    target = models.TextField(blank=True)  # the witness URL of a COSIGN duty; else ""
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "archive_anchortask"
        ordering = ["next_attempt_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint", "duty", "target"], name="anchortask_once"
            ),
        ]
        indexes = [models.Index(fields=["duty", "next_attempt_at"], name="anchortask_due")]

    def __str__(self) -> str:
        return f"{self.duty} of checkpoint {self.checkpoint_id}"
