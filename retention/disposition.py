"""Disposition: deleting the content of records past retention and under no active hold.

`plan()` refreshes the holds, then counts what is due among the entries sealed before it began
(a dry run stops there). A plan above DISPOSITION_APPROVAL_THRESHOLD records waits for a second
administrator, independent of the one who asked (`independence()`); otherwise it runs at once.
`run()` disposes in batches of DISPOSITION_BATCH, each one transaction: pick due records, call
`retention_dispose()` (the database function that refuses anything inside retention or held,
whoever calls it), seal a `retention.disposition` entry naming every disposed seq with its kind
and policy, and after commit delete the media bytes from the records store (every version; a
refusal stays pending with its error and is retried). When a run ends it sends `finished` (a
Django signal); GDPR erasure (retention/erasure.py, a step above this module) listens to settle
the requests whose records are now gone.

Each batch holds the chain head (the ledger's append lock) from its start: appenders lock the
head before they lengthen retention records, so taking it first is what keeps the two from
deadlocking. Webhooks are still received and committed throughout (the inbox needs no ledger
lock); sealing waits at most one batch. Batches are slices of about SLICE_SECONDS: the first
has DISPOSITION_BATCH records, and the next grow (up to MAX_BATCH_FACTOR times) while they
hold the head for less. PostgreSQL queues the head's waiters in order, so a sequencer waiting
when a slice commits goes before the next slice; each slice then pays one wait for the
sequencer's transaction, which larger slices amortise (measured beside capture with fsync on:
tests/performance/test_bench_retention.py, test_dispose_beside_capture).
"""

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Now
from django.dispatch import Signal
from django.utils import timezone

from archive import ledger, objectstore
from archive.envelope import Fact, rfc3339
from messaging.models import MediaFile

from . import holds, object_lock
from .audit import actor
from .models import (
    Disposition,
    ErasureRequest,
    HoldItem,
    PendingDeletion,
    RetentionPolicy,
    RetentionRecord,
)
from .object_lock import store_error

# Sent after every run(), whether it disposed of anything or failed (sender: the Disposition).
finished = Signal()

logger = logging.getLogger(__name__)
# One disposition batch at a time, cluster-wide.
DISPOSITION_LOCK = 0x436C5769_44697370  # "ClWiDisp"


@dataclass
class Report:
    """What a disposition would remove (a dry run) or was planned to remove."""

    upto_seq: int
    cutoff: datetime
    count: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_policy: dict[str, int] = field(default_factory=dict)
    media_files: int = 0
    held: int = 0  # past retention but kept by an active hold
    needs_approval: bool = False

    def lines(self) -> list[str]:
        out = [
            f"{self.count} records past retention and under no hold (sealed before seq "
            f"{self.upto_seq}, due by {self.cutoff:%Y-%m-%d %H:%M:%S} UTC)"
        ]
        out += [f"  {kind}: {n}" for kind, n in sorted(self.by_kind.items())]
        out += [f"  policy {name}: {n}" for name, n in sorted(self.by_policy.items())]
        out.append(f"  stored media files to delete: {self.media_files}")
        out.append(f"{self.held} more are past retention but kept by an active legal hold")
        if self.needs_approval:
            out.append(
                f"Above {settings.DISPOSITION_APPROVAL_THRESHOLD} records: a second administrator "
                "must approve before it runs."
            )
        return out


def held() -> QuerySet[HoldItem]:
    return HoldItem.objects.filter(entry_id=OuterRef("entry_id"), hold__released_at__isnull=True)


def due(upto_seq: int, cutoff: datetime | None = None) -> QuerySet[RetentionRecord]:
    """Undisposed records sealed before `upto_seq`, past retention (by the database's clock, as
    `retention_dispose()` judges it; and no later than `cutoff`), under no active hold."""
    records = RetentionRecord.objects.filter(
        disposed_at__isnull=True, entry_id__lt=upto_seq, retain_until__lte=Now()
    )
    if cutoff is not None:
        records = records.filter(retain_until__lte=cutoff)
    return records.exclude(Exists(held()))


def for_erasure(
    records: QuerySet[RetentionRecord], erasure: ErasureRequest
) -> QuerySet[RetentionRecord]:
    return records.filter(entry_id__in=erasure.covered)


def frontier() -> tuple[int, datetime]:
    """The chain's size and the database's clock, read under the ledger's append lock: every
    entry below that size is committed, and every entry sealed later gets a later seal time.
    A plan covers entries below the size that expired by that time, so anything sealed since,
    and whatever it lengthens (its conversation, its participant), stays out of it."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT size FROM archive_chainhead WHERE id = 1 FOR UPDATE")
        (size,) = cursor.fetchone()
        cursor.execute("SELECT clock_timestamp()")
        (now,) = cursor.fetchone()
    return int(size), now


def report(erasure: ErasureRequest | None = None) -> Report:
    """Refresh the holds, then say what is due now (nothing is changed but hold items)."""
    upto, cutoff = frontier()  # read first: every entry below it is visible to the refresh
    holds.refresh_active()
    records = due(upto, cutoff)
    expired = RetentionRecord.objects.filter(
        disposed_at__isnull=True, entry_id__lt=upto, retain_until__lte=cutoff
    ).filter(Exists(held()))
    if erasure is not None:
        records = for_erasure(records, erasure)
        expired = for_erasure(expired, erasure)
    names = dict(RetentionPolicy.objects.values_list("pk", "name"))
    out = Report(upto_seq=upto, cutoff=cutoff)
    for kind, policy_id in records.values_list("kind", "policy_id").iterator(chunk_size=10_000):
        out.count += 1
        out.by_kind[kind] = out.by_kind.get(kind, 0) + 1
        name = names.get(policy_id, str(policy_id))
        out.by_policy[name] = out.by_policy.get(name, 0) + 1
    out.media_files = out.by_kind.get("media.file", 0)
    out.held = expired.count()
    out.needs_approval = out.count > settings.DISPOSITION_APPROVAL_THRESHOLD
    return out


def plan(user: User | None = None, erasure: ErasureRequest | None = None) -> Disposition | None:
    """Plan a disposition of what is due now; run it at once unless it needs approval."""
    found = report(erasure)
    if found.count == 0:
        return None
    state = (
        Disposition.State.AWAITING_APPROVAL if found.needs_approval else Disposition.State.APPROVED
    )
    with transaction.atomic():
        disposition = Disposition.objects.create(
            state=state,
            requested_by=user if user is not None and user.pk else None,
            upto_seq=found.upto_seq,
            cutoff=found.cutoff,
            planned=found.count,
            planned_by_kind=found.by_kind,
            planned_by_policy=found.by_policy,
            erasure=erasure,
        )
        _seal_step(disposition, "planned", user)
    if state == Disposition.State.APPROVED:
        run(disposition.pk)
        disposition.refresh_from_db()
    return disposition


def approve(disposition: Disposition, user: User) -> Disposition:
    """A second, independent administrator's approval (see `independence`)."""
    if not user.has_perm("retention.apply_retention"):
        raise PermissionDenied("Only administrators approve dispositions.")
    if disposition.requested_by_id is not None:
        independence(disposition.requested_by_id, user)
    with transaction.atomic():
        claimed = Disposition.objects.filter(
            pk=disposition.pk, state=Disposition.State.AWAITING_APPROVAL
        ).update(state=Disposition.State.APPROVED, approved_by=user, approved_at=timezone.now())
        if not claimed:
            raise ValidationError("This disposition is not waiting for approval.")
        disposition.refresh_from_db()
        _seal_step(disposition, "approved", user)
        transaction.on_commit(lambda: _queue(disposition.pk))
    return disposition


def independence(requester_id: int, approver: User) -> None:
    """Refuse an approver who is not independent of the requester: the requester themselves,
    or whoever created the requester's account or gave it a role or a permission within the
    last DISPOSITION_INDEPENDENCE_DAYS days (as django-auditlog recorded it), since one person
    could otherwise approve their own disposition through an account they just made."""
    if requester_id == approver.pk:
        raise ValidationError("A second administrator must approve: not the one who asked.")
    days = settings.DISPOSITION_INDEPENDENCE_DAYS
    made = (
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(User),
            object_pk=str(requester_id),
            actor_id=approver.pk,
            timestamp__gte=timezone.now() - timedelta(days=days),
        )
        .filter(
            Q(action=LogEntry.Action.CREATE)
            | Q(action=LogEntry.Action.UPDATE, changes__groups__operation="add")
            | Q(action=LogEntry.Action.UPDATE, changes__user_permissions__operation="add")
        )
        .order_by("action", "-timestamp")  # a creation (action 0) is named first
        .first()
    )
    if made is not None:
        if made.action == LogEntry.Action.CREATE:
            what = "created their account"
        else:
            what = "gave them a role" if "groups" in made.changes else "gave them a permission"
        raise ValidationError(
            "A second administrator must approve: the one who asked is "
            f"{made.object_repr}, and you {what} on {made.timestamp:%Y-%m-%d}, less than "
            f"{days} days ago."
        )


def reject(disposition: Disposition, user: User, reason: str) -> Disposition:
    if not user.has_perm("retention.apply_retention"):
        raise PermissionDenied("Only administrators decide dispositions.")
    if not reason.strip():
        raise ValidationError("Say why the disposition is rejected.")
    with transaction.atomic():
        claimed = Disposition.objects.filter(
            pk=disposition.pk, state=Disposition.State.AWAITING_APPROVAL
        ).update(state=Disposition.State.REJECTED, error=reason.strip()[:1000])
        if not claimed:
            raise ValidationError("This disposition is not waiting for approval.")
        disposition.refresh_from_db()
        _seal_step(disposition, "rejected", user, reason=reason.strip())
    return disposition


def _queue(pk: int) -> None:
    from django_q.tasks import async_task

    async_task("retention.tasks.run_disposition", pk, task_name=f"disposition {pk}")


def run(pk: int) -> Disposition:
    """Carry out an approved disposition, batch by batch (a second delivery does nothing)."""
    claimed = Disposition.objects.filter(pk=pk, state=Disposition.State.APPROVED).update(
        state=Disposition.State.RUNNING
    )
    disposition = Disposition.objects.get(pk=pk)
    if not claimed:
        return disposition
    try:
        holds.refresh_active()
        after: int | None = -1
        slices = Slices(settings.DISPOSITION_BATCH)
        while after is not None:
            after = _batch(disposition, after, slices)
    except Exception as exc:
        logger.exception("disposition %s failed", pk)
        Disposition.objects.filter(pk=pk).update(
            state=Disposition.State.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
    else:
        Disposition.objects.filter(pk=pk).update(
            state=Disposition.State.DONE, finished_at=timezone.now()
        )
    delete_pending_media(not_tried_since=disposition.requested_at)
    finished.send(sender=Disposition, disposition=disposition)
    disposition.refresh_from_db()
    return disposition


# A batch holds the chain head (capture's sealing waits for it) about this long. Beside capture
# offered 1,000 msg/s (fsync on, 181,369 records; docs/SCALE.md §7f), slices of 1 s disposed
# of 10,933 records/s but held sealing up to 994 ms and kept capture at 940 msg/s; 0.25 s:
# 8,745 records/s (1M in 114 s), sealing held up to 309 ms, capture at 990 msg/s.
SLICE_SECONDS = 0.25
MAX_BATCH_FACTOR = 20


@dataclass
class Slices:
    """The size of the next batch: DISPOSITION_BATCH at first, then as many records as fit in
    SLICE_SECONDS at the pace the last batch went (at most doubling, never below the first
    size, at most MAX_BATCH_FACTOR times it)."""

    first: int
    size: int = 0

    def __post_init__(self) -> None:
        self.size = self.size or self.first

    def held(self, seconds: float, records: int) -> None:
        if SLICE_SECONDS <= 0 or seconds <= 0 or records < self.size:
            return  # fixed batches (SLICE_SECONDS 0), or a last, partial batch
        wanted = int(self.size * SLICE_SECONDS / seconds)
        self.size = max(self.first, min(wanted, 2 * self.size, self.first * MAX_BATCH_FACTOR))


def _batch(disposition: Disposition, after: int, slices: Slices | None = None) -> int | None:
    """Dispose of one batch, the due records after seq `after`, in one transaction; return the
    last seq disposed of (where the next batch starts), or None when nothing was left."""
    slices = slices or Slices(settings.DISPOSITION_BATCH)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [DISPOSITION_LOCK])
        # The chain head first, as every appender takes it: the sequencer and the media fetcher
        # lock the head, then lengthen retention records; taking record locks first and the
        # head last deadlocked against them (measured under capture, tests/performance).
        cursor.execute("SELECT 1 FROM archive_chainhead WHERE id = 1 FOR UPDATE")
        holding = time.perf_counter()
        records = due(disposition.upto_seq, disposition.cutoff).filter(entry_id__gt=after)
        if disposition.erasure is not None:
            records = for_erasure(records, disposition.erasure)
        seqs = list(records.order_by("entry_id").values_list("entry_id", flat=True)[: slices.size])
        if not seqs:
            return None
        cursor.execute(
            "SELECT seq, kind, policy_id FROM retention_dispose(%s::bigint[], %s)",
            [seqs, disposition.pk],
        )
        disposed = sorted(cursor.fetchall())
        kinds = Counter(kind for _, kind, _ in disposed)
        Disposition.objects.filter(pk=disposition.pk).update(
            disposed=disposition.disposed + len(disposed),
            media_deleted=disposition.media_deleted + kinds.get("media.file", 0),
        )
        disposition.disposed += len(disposed)
        disposition.media_deleted += kinds.get("media.file", 0)
        policies = {
            str(pk): {"name": name, "days": days, "rule": rule}
            for pk, name, days, rule in RetentionPolicy.objects.filter(
                pk__in={p for _, _, p in disposed}
            ).values_list("pk", "name", "days", "rule")
        }
        fact = Fact(
            "retention.disposition",
            {
                "disposition": disposition.pk,
                "records": len(disposed),
                "first_seq": disposed[0][0],
                "last_seq": disposed[-1][0],
            },
            {
                "disposed": json.dumps([list(row) for row in disposed]).encode(),
                "policies": json.dumps(policies, sort_keys=True).encode(),
            },
        )
        ledger.append([fact])
        # what an earlier run could not delete is tried again, once per run
        transaction.on_commit(
            lambda: delete_pending_media(not_tried_since=disposition.requested_at)
        )
    # the commit included, and media deletions after it (a slower store: smaller batches)
    slices.held(time.perf_counter() - holding, len(seqs))
    return int(disposed[-1][0])


def delete_pending_media(not_tried_since: datetime | None = None) -> int:
    """Delete every version of disposed media from the records store (unless a live media file
    was stored again with the same name since), first lifting a legal hold this archive set.

    A deletion the store refuses or cannot reach is never skipped silently: its row stays with
    the error and the attempt count (the policies page and the admin show them) and the next
    run tries again (a disposition passes when it was requested as `not_tried_since`, so what
    it tried once it does not try again at every batch). What
    was deleted and what was refused is sealed per disposition (`retention.disposition.files`).
    Idempotent, so a crash between commit and deletion is caught up later."""
    store = objectstore.records()
    pending = PendingDeletion.objects.order_by("pk")
    if not_tried_since is not None:
        pending = pending.filter(Q(attempted_at__isnull=True) | Q(attempted_at__lt=not_tried_since))
    deleted: Counter[int | None] = Counter()
    refused: dict[int | None, list[str]] = {}
    for row in pending.iterator():
        if MediaFile.objects.filter(storage_name=row.storage_name).exists():
            row.delete()
            continue
        try:
            object_lock.lift_hold(store, row.storage_name)
            store.destroy(row.storage_name)
        except Exception as error:  # one file's failure must not stop the rest
            reason = store_error(error).replace(row.storage_name, "a media file")[:2000]
            PendingDeletion.objects.filter(pk=row.pk).update(
                attempts=F("attempts") + 1, attempted_at=timezone.now(), error=reason
            )
            if row.attempts == 0:  # sealed once, not at every retry
                refused.setdefault(row.disposition_id, []).append(reason)
            continue
        object_lock.forget(row.storage_name)
        row.delete()
        deleted[row.disposition_id] += 1
    for pk in sorted(set(deleted) | set(refused), key=lambda pk: pk or 0):
        _seal_files(pk, deleted[pk], refused.get(pk, []))
    return deleted.total()


def _seal_files(pk: int | None, deleted: int, refused: list[str]) -> None:
    """Seal what became of a disposition's media files: how many were deleted from the store,
    how many it refused and why (no names: they derive from the disposed content's SHA-256)."""
    if refused:
        logger.warning("disposition %s: the records store refused %d deletions", pk, len(refused))
    fact = Fact(
        "retention.disposition.files",
        {"disposition": pk, "deleted": deleted, "refused": len(refused)},
        {"reasons": json.dumps(sorted(set(refused))).encode()},
    )
    with transaction.atomic():
        ledger.append([fact])


def _seal_step(disposition: Disposition, step: str, user: User | None, reason: str = "") -> None:
    ledger.append(
        [
            Fact(
                f"retention.disposition.{step}",
                {
                    "disposition": disposition.pk,
                    "planned": disposition.planned,
                    "upto_seq": disposition.upto_seq,
                    "cutoff": rfc3339(disposition.cutoff),
                },
                {
                    "user": actor(user),
                    "reason": reason.encode(),
                },
            )
        ]
    )
