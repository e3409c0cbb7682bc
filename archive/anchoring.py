"""Anchoring checkpoints outside the database: the duties each new checkpoint brings, done by
the worker with retries, so that nothing outside ever blocks sealing or checkpointing.

A checkpoint is signed in the database at once (archive/checkpoints.py). Then, as duties in
`archive_anchortask`:

- `timestamp`: an RFC 3161 token over its note from a TSA in TSA_URLS (archive/timestamps.py);
- `publish.note`, then `publish.timestamp` once a token is kept: the note and the token
  written to the records store and CHECKPOINT_DIR (archive/publication.py);
- `cosign`: the checkpoint and its consistency proof submitted to each witness in
  WITNESS_URLS for a cosignature (archive/witness.py). Only the newest checkpoint is worth a
  witness's time (a witness cannot cosign a tree older than one it has seen), so an older
  checkpoint's `cosign` duty is dropped once a newer one has its own.

A duty that fails is tried again after 1, 2, 4 … minutes (at most ANCHOR_RETRY_MAX_MINUTES),
with the reason kept on its row, logged, and shown on the integrity status. A row is deleted
when its duty is done; what the duty produced is kept append-only in its own table.
"""

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from archive.models import AnchorTask, Checkpoint, CheckpointTimestamp

logger = logging.getLogger(__name__)
Duty = AnchorTask.Duty


class AnchorFailure(Exception):
    """A duty could not be done now; the message says why (it is logged and shown)."""


def plan(checkpoint: Checkpoint, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """The duties of a new checkpoint, in the caller's transaction."""
    now = timezone.now()
    duties: list[tuple[str, str]] = [(Duty.PUBLISH_NOTE, "")]
    if settings.TSA_URLS:
        duties.append((Duty.TIMESTAMP, ""))
    duties += [(Duty.COSIGN, url) for url in settings.WITNESS_URLS]
    AnchorTask.objects.using(using).bulk_create(
        [
            AnchorTask(
                checkpoint=checkpoint, duty=duty, target=target, next_attempt_at=now, created_at=now
            )
            for duty, target in duties
        ],
        ignore_conflicts=True,
    )


def add_duty(
    checkpoint: Checkpoint, duty: str, target: str = "", *, using: str = DEFAULT_DB_ALIAS
) -> None:
    """One more duty for a checkpoint (e.g. publishing a token once it arrives)."""
    now = timezone.now()
    AnchorTask.objects.using(using).get_or_create(
        checkpoint=checkpoint,
        duty=duty,
        target=target,
        defaults={"next_attempt_at": now, "created_at": now},
    )


def backfill(*, using: str = DEFAULT_DB_ALIAS) -> int:
    """Plan the duties of every checkpoint that has none and lacks what they would produce
    (checkpoints signed before anchoring was configured). Returns how many were planned."""
    planned = 0
    # Timestamps follow tree order (archive/timestamps.py): a checkpoint older than one already
    # timestamped stays without, rather than be given a later time than a larger tree's.
    stamped = CheckpointTimestamp.objects.using(using).aggregate(newest=Max("checkpoint_id"))
    newest_stamped = stamped["newest"] or 0
    lacking = Checkpoint.objects.using(using).filter(anchor_tasks__isnull=True)
    for checkpoint in lacking.order_by("tree_size").iterator():
        duties = _missing(checkpoint, newest_stamped, using)
        for duty, target in duties:
            add_duty(checkpoint, duty, target, using=using)
        planned += bool(duties)
    return planned


def _missing(checkpoint: Checkpoint, newest_stamped: int, using: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    published = set(checkpoint.publications.using(using).values_list("artifact", flat=True))
    if "note" not in published:
        found.append((Duty.PUBLISH_NOTE, ""))
    timestamped = checkpoint.timestamps.using(using).exists()
    if settings.TSA_URLS and not timestamped and checkpoint.tree_size > newest_stamped:
        found.append((Duty.TIMESTAMP, ""))
    if timestamped and "timestamp" not in published:
        found.append((Duty.PUBLISH_TIMESTAMP, ""))
    return found


def _handlers() -> dict[str, Callable[[Checkpoint, str], object]]:
    from archive import publication, timestamps, witness

    return {
        Duty.TIMESTAMP: lambda checkpoint, _target: timestamps.obtain(checkpoint),
        Duty.PUBLISH_NOTE: lambda checkpoint, _target: publication.publish(checkpoint, "note"),
        Duty.PUBLISH_TIMESTAMP: lambda checkpoint, _target: publication.publish(
            checkpoint, "timestamp"
        ),
        Duty.COSIGN: witness.cosign,
    }


def retry_delay(attempts: int) -> timedelta:
    """After the n-th failure: 2**(n-1) minutes, at most ANCHOR_RETRY_MAX_MINUTES."""
    minutes = 2 ** min(max(attempts - 1, 0), 20)
    return timedelta(minutes=min(minutes, settings.ANCHOR_RETRY_MAX_MINUTES))


@dataclass
class RunResult:
    done: int = 0
    failed: int = 0
    dropped: int = 0


def run_due(
    *,
    everything: bool = False,
    limit: int = 100,
    checkpoint: Checkpoint | None = None,
    duties: Collection[str] = (),
) -> RunResult:
    """Do the duties that are due (all of them with `everything`), oldest checkpoint first;
    only `checkpoint`'s, or only these `duties`, when given (an export wants its checkpoint's
    timestamp now, whatever the backoff says: pass `everything=True` too).

    Each duty runs in its own transaction holding its row (SKIP LOCKED: two workers never do
    the same duty), so what a duty produced and the row's deletion commit together.
    """
    result = RunResult()
    result.dropped = _drop_superseded_cosigns()
    handlers = _handlers()
    due = AnchorTask.objects.order_by("checkpoint_id", "duty")
    if not everything:
        due = due.filter(next_attempt_at__lte=timezone.now())
    if checkpoint is not None:
        due = due.filter(checkpoint=checkpoint)
    if duties:
        due = due.filter(duty__in=list(duties))
    for task_id in list(due.values_list("pk", flat=True)[:limit]):
        with transaction.atomic():
            task = (
                AnchorTask.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("checkpoint")
                .filter(pk=task_id)
                .first()
            )
            if task is None:  # done by another worker meanwhile
                continue
            try:
                with transaction.atomic():
                    handlers[task.duty](task.checkpoint, task.target)
            except AnchorFailure as failure:
                _failed(task, str(failure))
                result.failed += 1
            except Exception as exc:  # a bug or an unexpected reply: retried, never a stall
                logger.exception("anchoring: %s failed unexpectedly", task)
                _failed(task, f"unexpected {type(exc).__name__}: {exc}")
                result.failed += 1
            else:
                task.delete()
                result.done += 1
    return result


def _failed(task: AnchorTask, reason: str) -> None:
    task.attempts += 1
    task.last_error = reason[:2000]
    task.next_attempt_at = timezone.now() + retry_delay(task.attempts)
    task.save(update_fields=["attempts", "last_error", "next_attempt_at"])
    logger.warning(
        "anchoring: %s failed (attempt %d, next at %s): %s",
        task,
        task.attempts,
        task.next_attempt_at.isoformat(),
        task.last_error,
    )


def _drop_superseded_cosigns() -> int:
    """A witness only cosigns forward: an older checkpoint's cosign duty yields to a newer."""
    dropped = 0
    newest = (
        AnchorTask.objects.filter(duty=Duty.COSIGN)
        .values("target")
        .annotate(newest=Max("checkpoint_id"))
    )
    for row in newest:
        stale = AnchorTask.objects.filter(
            duty=Duty.COSIGN, target=row["target"], checkpoint_id__lt=row["newest"]
        )
        dropped += stale.delete()[0]
    return dropped


@dataclass(frozen=True)
class Backlog:
    """One duty's outstanding work, as the integrity status shows it."""

    duty: str
    label: str
    checkpoints: int
    oldest: datetime | None  # the oldest waiting checkpoint's time
    last_error: str

    @property
    def oldest_age(self) -> timedelta | None:
        return timezone.now() - self.oldest if self.oldest else None


def backlog() -> list[Backlog]:
    """Every duty with work waiting: how many checkpoints, since when, and the latest reason."""
    rows = (
        AnchorTask.objects.values("duty")
        .annotate(count=Count("checkpoint", distinct=True), oldest=Min("checkpoint__created_at"))
        .order_by("duty")
    )
    labels = dict(Duty.choices)
    found = []
    for row in rows:
        failing = (
            AnchorTask.objects.filter(duty=row["duty"])
            .exclude(last_error="")
            .order_by("-attempts", "checkpoint_id")
            .values_list("last_error", flat=True)
            .first()
        )
        found.append(
            Backlog(row["duty"], labels[row["duty"]], row["count"], row["oldest"], failing or "")
        )
    return found
