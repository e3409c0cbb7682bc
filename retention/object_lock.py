"""Object Lock: the records bucket enforces what PostgreSQL enforces.

Every stored media file has its `media.file` ledger entry and that entry's retention record.
`reconcile()` makes the stored object's S3 Object Lock match them:

- COMPLIANCE retention until the record's `retain_until`, only ever lengthened (the record only
  lengthens, and S3 refuses to shorten compliance retention); a date already past is not sent
  (S3 refuses a retain-until in the past, and there is nothing left to protect);
- the object's legal hold ON while an active legal hold covers the entry (a hold item of an
  unreleased hold, retention/holds.py), OFF once none does.

What was last applied is kept per object in `ObjectLock` (retention_objectlock), so a run only
touches objects whose wanted state differs from it, BATCH at a time. A store error
is written on the object's row and the run goes on; that object is tried again after
RETRY_AFTER. One run at a time, cluster-wide (an advisory lock; a run that finds it taken does
nothing: the one under way, or the next, sees the same rows).

It runs every minute (retention/apps.py) and is woken after commit when a media file gets its
retention (assign.py), when a hold is created, changed or released (holds.py). Until then the
bucket's default retention protects a new object (moto applies none to multipart uploads:
tests/s3.py). Disposition (disposition.py) lifts a hold this archive set before deleting.

On the filesystem store `retain()` and `hold()` do nothing; the rows are still written, so the
table says what the archive asked for, not what a disk enforces. The changes are not sealed one
by one: each follows a sealed fact (the record's retention, a hold's creation or release), and
the bucket's own answer (head_object) is the evidence of what it enforces.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from archive import objectstore
from archive.objectstore import Store, StoreError
from messaging import inbox

from .models import ObjectLock

logger = logging.getLogger(__name__)
TASK = "retention.tasks.reconcile_object_locks"
BATCH = 500  # objects read per query
RETRY_AFTER = timedelta(minutes=10)
RUN_LOCK = 0x436C5769_4C6F636B  # "ClWiLock": one reconciliation at a time

# Live media files (not disposed of) whose lock differs from what was applied, after `after`
# (media file ids, in order). An errored row waits RETRY_AFTER before it is tried again.
DIFFERING = """
SELECT id, name, until, held, applied_until, applied_held FROM (
    SELECT f.id, f.storage_name AS name, r.retain_until AS until,
           EXISTS (SELECT 1 FROM retention_holditem i
                     JOIN retention_legalhold h ON h.id = i.hold_id
                    WHERE i.seq = f.seq AND h.released_at IS NULL) AS held,
           o.storage_name IS NOT NULL AS known, o.retain_until AS applied_until,
           o.held AS applied_held, o.error, o.attempted_at
      FROM messaging_mediafile f
      JOIN retention_record r ON r.seq = f.seq AND r.disposed_at IS NULL
      LEFT JOIN retention_objectlock o ON o.storage_name = f.storage_name
     WHERE f.id > %(after)s AND f.storage_name <> ''
) AS w
 WHERE (NOT known OR applied_until IS NULL OR applied_until < until OR applied_held <> held)
   AND (error IS NULL OR error = '' OR attempted_at < now() - %(retry)s)
 ORDER BY id
 LIMIT %(batch)s
"""


@dataclass
class Outcome:
    """What one reconciliation did."""

    retained: int = 0
    held: int = 0
    released: int = 0
    failed: int = 0
    busy: bool = False  # another run held the lock: this one did nothing

    def summary(self) -> str:
        if self.busy:
            return "another run is under way"
        return (
            f"{self.retained} retained, {self.held} held, {self.released} released, "
            f"{self.failed} failed"
        )


@dataclass(frozen=True)
class Wanted:
    name: str
    until: datetime
    held: bool
    applied_until: datetime | None
    applied_held: bool | None


def reconcile() -> Outcome:
    """Bring every differing object's lock in line with its record, batch by batch."""
    done = Outcome()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [RUN_LOCK])
        if not cursor.fetchone()[0]:
            done.busy = True
            return done
    try:
        store = objectstore.records()
        after = 0
        while batch := _differing(after):
            for last_id, wanted in batch:
                _apply(store, wanted, done)
                after = last_id
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [RUN_LOCK])
    if done.failed:
        logger.warning("object lock: %s", done.summary())
    return done


def _differing(after: int) -> list[tuple[int, Wanted]]:
    params: dict[str, Any] = {"after": after, "retry": RETRY_AFTER, "batch": BATCH}
    with connection.cursor() as cursor:
        cursor.execute(DIFFERING, params)
        return [(row[0], Wanted(*row[1:])) for row in cursor.fetchall()]


def _apply(store: Store, wanted: Wanted, done: Outcome) -> None:
    """Set what differs on one object. Retention and hold are set independently: a refused
    retention must not keep a hold off."""
    lock, _ = ObjectLock.objects.get_or_create(storage_name=wanted.name)
    lock.attempted_at = now = timezone.now()
    errors = []
    if lock.retain_until is None or lock.retain_until < wanted.until:
        try:
            if wanted.until > now:  # S3 refuses a retain-until in the past
                store.retain(wanted.name, wanted.until)
                done.retained += 1
            lock.retain_until = wanted.until
        except Exception as error:  # recorded on the row; the run goes on
            errors.append(store_error(error))
    if wanted.held != lock.held:
        try:
            store.hold(wanted.name, wanted.held)
            lock.held = wanted.held
            if wanted.held:
                done.held += 1
            else:
                done.released += 1
        except Exception as error:  # recorded on the row; the run goes on
            errors.append(store_error(error))
    lock.error = "; ".join(errors)[:2000]
    if errors:
        done.failed += 1
    else:
        lock.applied_at = now
    lock.save(update_fields=["retain_until", "held", "applied_at", "attempted_at", "error"])


def store_error(error: Exception) -> str:
    """What to record of a failure: the store's own message (StoreError), or for anything else
    reaching the store (an endpoint that cannot be reached, a bug) its type, logged in full."""
    if isinstance(error, StoreError):
        return str(error)
    logger.error("the records store failed", exc_info=error)
    return f"the records store failed: {type(error).__name__}"


def lift_hold(store: Store, name: str) -> None:
    """Before an object is deleted: clear a legal hold this archive set on it (its record was
    disposed of, which PostgreSQL allows only under no active hold). Raises what the store
    raises."""
    if ObjectLock.objects.filter(storage_name=name, held=True).exists():
        store.hold(name, False)
        ObjectLock.objects.filter(storage_name=name).update(held=False, applied_at=timezone.now())


def forget(name: str) -> None:
    """The object is gone: the same bytes stored again start from nothing."""
    ObjectLock.objects.filter(storage_name=name).delete()


def wake() -> None:
    """Queue a reconciliation once the current transaction commits (coalesced)."""
    transaction.on_commit(lambda: inbox.queue(TASK, "object lock"))
