"""What the retention pages may read, and who may read it: one checked access function per kind
of object (STYLE.md), plus the read-only figures the pages and the admin show.

Policies need `retention.view_retentionpolicy`; holds `retention.view_legalhold` (changing one
`retention.manage_holds`); dispositions `retention.view_disposition` (deciding one
`retention.apply_retention`); erasure requests `retention.view_erasurerequest`. A user without the
permission gets a 403 that says so; an object that does not exist is a 404 whoever asks.
"""

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import Count, Min, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from messaging.models import Channel
from review.access import require

from .holds import HoldScope
from .models import (
    Disposition,
    ErasureRequest,
    HoldItem,
    LegalHold,
    RetentionPolicy,
    RetentionRecord,
)
from .policies import period_text

VIEW_POLICIES = "retention.view_retentionpolicy"
VIEW_HOLDS = "retention.view_legalhold"
MANAGE_HOLDS = "retention.manage_holds"
VIEW_DISPOSITIONS = "retention.view_disposition"
APPLY = "retention.apply_retention"
VIEW_ERASURE = "retention.view_erasurerequest"
ADD_ERASURE = "retention.add_erasurerequest"
VIEW_RECORD = "retention.view_record_of_processing"


# --- access -----------------------------------------------------------------------------------


def policies_for_user(request: HttpRequest) -> QuerySet[RetentionPolicy]:
    require(request, VIEW_POLICIES)
    return RetentionPolicy.objects.prefetch_related("channels")


def holds_for_user(request: HttpRequest) -> QuerySet[LegalHold]:
    require(request, VIEW_HOLDS)
    return LegalHold.objects.select_related("created_by", "released_by")


def hold_for_user(request: HttpRequest, pk: int, permission: str = VIEW_HOLDS) -> LegalHold:
    require(request, VIEW_HOLDS)
    require(request, permission)
    return get_object_or_404(holds_for_user(request), pk=pk)


def dispositions_for_user(request: HttpRequest) -> QuerySet[Disposition]:
    require(request, VIEW_DISPOSITIONS)
    return Disposition.objects.select_related("requested_by", "approved_by", "erasure")


def disposition_for_user(request: HttpRequest, pk: int, permission: str = APPLY) -> Disposition:
    require(request, VIEW_DISPOSITIONS)
    require(request, permission)
    return get_object_or_404(dispositions_for_user(request), pk=pk)


def erasure_requests_for_user(request: HttpRequest) -> QuerySet[ErasureRequest]:
    require(request, VIEW_ERASURE)
    return ErasureRequest.objects.select_related("recorded_by")


# --- figures ----------------------------------------------------------------------------------


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
