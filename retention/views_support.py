"""The read-only figures the retention pages and the admin show (who may see them is
retention/access.py's business)."""

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import Count, Min, OuterRef, QuerySet, Subquery

from messaging.models import Channel

from .holds import HoldScope
from .models import (
    Disposition,
    HoldItem,
    LegalHold,
    PendingDeletion,
    RetentionPolicy,
    RetentionRecord,
)
from .policies import period_text


@dataclass
class PolicyRow:
    policy: RetentionPolicy
    period: str
    channels: list[Channel]
    live: int
    next_expiry: datetime | None


def policy_rows(policies: QuerySet[RetentionPolicy]) -> list[PolicyRow]:
    """Each policy with its live (undisposed) records and the earliest of their expiries; one
    grouped query, served by the `retention_live` index."""
    figures: dict[int, tuple[int, datetime | None]] = {
        policy_id: (n, first)
        for policy_id, n, first in RetentionRecord.objects.filter(disposed_at__isnull=True)
        .values("policy")
        .annotate(n=Count("entry"), first=Min("retain_until"))
        .values_list("policy", "n", "first")
    }
    rows = []
    for policy in policies:
        live, first = figures.get(policy.pk, (0, None))
        rows.append(
            PolicyRow(policy, period_text(policy.days), list(policy.channels.all()), live, first)
        )
    return rows


def live_records(policy: RetentionPolicy) -> int:
    """How many undisposed records `policy` governs now (the admin's change page)."""
    return RetentionRecord.objects.filter(policy=policy, disposed_at__isnull=True).count()


def channels_under_default() -> QuerySet[Channel]:
    """Channels no policy names: the default policy governs them."""
    return Channel.objects.filter(retention_policies__isnull=True).order_by("name")


def hold_item_kinds(hold: LegalHold) -> list[tuple[str, int]]:
    """(kind, count) of what a hold covers: messages, statuses, media, conversations…"""
    rows = (
        HoldItem.objects.filter(hold=hold)
        .values("kind")
        .annotate(n=Count("entry"))
        .order_by("kind")
        .values_list("kind", "n")
    )
    return list(rows)


def scope_of(hold: LegalHold) -> HoldScope | None:
    """The hold's scope, or None if what is stored no longer passes HoldScope's checks (a search
    parameter since renamed, say): the page then shows the stored JSON instead of failing."""
    try:
        return HoldScope.from_json(hold.scope)
    except (ValidationError, KeyError, TypeError, ValueError):
        return None


def with_files_waiting(dispositions: QuerySet[Disposition]) -> QuerySet[Disposition]:
    """Each disposition with its media files not yet deleted from the records store
    (`files_waiting`) and the latest reason the store gave (`files_error`)."""
    latest = PendingDeletion.objects.filter(disposition=OuterRef("pk")).exclude(error="")
    return dispositions.annotate(
        files_waiting=Count("pendingdeletion"),
        files_error=Subquery(latest.order_by("-attempted_at").values("error")[:1]),
    )


def files_waiting(disposition: Disposition) -> int:
    """How many of a disposition's media files the records store has not deleted yet."""
    return PendingDeletion.objects.filter(disposition=disposition).count()
