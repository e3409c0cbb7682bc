"""The archive's integrity status as the home page and the ingestion page show it: the ledger,
its newest checkpoint, the last verification, and what anchors checkpoints outside the
database (timestamps, publication, cosignatures) with the work still waiting."""

from dataclasses import dataclass, field

from django.conf import settings

from archive import anchoring
from archive.models import (
    ChainHead,
    Checkpoint,
    CheckpointTimestamp,
    Cosignature,
    Publication,
    VerificationRun,
)


@dataclass(frozen=True)
class AnchoringSummary:
    timestamps_configured: bool
    witnesses: int
    checkpoint_dir: bool
    last_timestamp: CheckpointTimestamp | None
    last_publication: Publication | None
    last_cosignature: Cosignature | None
    backlog: list[anchoring.Backlog] = field(default_factory=list)

    def waiting(self, duty: str) -> anchoring.Backlog | None:
        return next((b for b in self.backlog if b.duty == duty), None)

    @property
    def awaiting_timestamp(self) -> anchoring.Backlog | None:
        return self.waiting(anchoring.Duty.TIMESTAMP)

    @property
    def awaiting_publication(self) -> anchoring.Backlog | None:
        return self.waiting(anchoring.Duty.PUBLISH_NOTE) or self.waiting(
            anchoring.Duty.PUBLISH_TIMESTAMP
        )

    @property
    def awaiting_cosignature(self) -> anchoring.Backlog | None:
        return self.waiting(anchoring.Duty.COSIGN)


@dataclass(frozen=True)
class IntegritySummary:
    entries: int
    last_checkpoint: Checkpoint | None
    last_verification: VerificationRun | None
    anchoring: AnchoringSummary
    # the hourly incremental runs are the latest; the daily full run is the audit
    last_full_verification: VerificationRun | None = None

    @property
    def unsigned_entries(self) -> int:
        signed = self.last_checkpoint.tree_size if self.last_checkpoint else 0
        return max(self.entries - signed, 0)


def anchoring_summary() -> AnchoringSummary:
    return AnchoringSummary(
        timestamps_configured=bool(settings.TSA_URLS),
        witnesses=len(settings.WITNESS_URLS),
        checkpoint_dir=bool(settings.CHECKPOINT_DIR),
        last_timestamp=CheckpointTimestamp.objects.order_by("-checkpoint_id", "-pk").first(),
        last_publication=Publication.objects.order_by("-checkpoint_id", "-pk").first(),
        last_cosignature=Cosignature.objects.order_by("-checkpoint_id", "-pk").first(),
        backlog=anchoring.backlog(),
    )


def integrity_summary() -> IntegritySummary:
    head = ChainHead.objects.filter(pk=1).only("size").first()
    return IntegritySummary(
        entries=head.size if head else 0,
        last_checkpoint=Checkpoint.objects.order_by("-tree_size").first(),
        last_verification=VerificationRun.objects.order_by("-finished_at").first(),
        anchoring=anchoring_summary(),
        last_full_verification=VerificationRun.objects.filter(mode="full")
        .order_by("-finished_at")
        .first(),
    )
