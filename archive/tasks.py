"""django-q2 tasks: thin wrappers over the domain functions the commands also call."""

from archive import anchoring
from archive.checkpoints import create_checkpoint
from archive.verify import NotVerified, record_run, verify_ledger


def checkpoint_task() -> int | None:
    """Scheduled every LEDGER_CHECKPOINT_MINUTES; signs only when entries were added."""
    checkpoint = create_checkpoint()
    if checkpoint is not None:
        anchoring.run_due()  # its timestamp and publication at once, not a minute later
    return checkpoint.tree_size if checkpoint else None


def anchor_task() -> int:
    """Scheduled every minute: the anchoring duties that are due (archive/anchoring.py)."""
    result = anchoring.run_due()
    return result.done


def verify_task() -> bool:
    """Scheduled daily; the result is recorded and shown on the home page."""
    report = verify_ledger()
    record_run(report, trigger="schedule")
    return report.intact


def verify_new_task() -> bool | None:
    """Scheduled hourly: only what was sealed since the last verified checkpoint (≈ 1 s for
    10,000 entries), so a broken chain, a changed content or a forged checkpoint shows within
    the hour instead of by the next daily run. None, recording nothing, until a full run has
    verified a checkpoint to start from (the daily one does)."""
    try:
        report = verify_ledger(incremental=True)
    except NotVerified:
        return None
    record_run(report, trigger="schedule")
    return report.intact
