"""The archive's integrity status as the home page shows it."""

from dataclasses import dataclass

from archive.models import ChainHead, Checkpoint, VerificationRun


@dataclass(frozen=True)
class IntegritySummary:
    entries: int
    last_checkpoint: Checkpoint | None
    last_verification: VerificationRun | None

    @property
    def unsigned_entries(self) -> int:
        signed = self.last_checkpoint.tree_size if self.last_checkpoint else 0
        return max(self.entries - signed, 0)


def integrity_summary() -> IntegritySummary:
    head = ChainHead.objects.filter(pk=1).only("size").first()
    return IntegritySummary(
        entries=head.size if head else 0,
        last_checkpoint=Checkpoint.objects.order_by("-tree_size").first(),
        last_verification=VerificationRun.objects.order_by("-finished_at").first(),
    )
