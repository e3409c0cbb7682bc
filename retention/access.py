"""Who may read and change what on the retention pages: one checked access function per kind of
object (docs/ARCHITECTURE.md §6), each taking the request.

Policies need `retention.view_retentionpolicy`; holds `retention.view_legalhold` (changing one
`retention.manage_holds`); dispositions `retention.view_disposition` (deciding one
`retention.apply_retention`); erasure requests `retention.view_erasurerequest`. A user without the
permission gets a 403 that says so; an object that does not exist is a 404 whoever asks.
"""

from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from review.access import require

from .models import Disposition, ErasureRequest, LegalHold, RetentionPolicy

VIEW_POLICIES = "retention.view_retentionpolicy"
VIEW_HOLDS = "retention.view_legalhold"
MANAGE_HOLDS = "retention.manage_holds"
VIEW_DISPOSITIONS = "retention.view_disposition"
APPLY = "retention.apply_retention"
VIEW_ERASURE = "retention.view_erasurerequest"
ADD_ERASURE = "retention.add_erasurerequest"
VIEW_RECORD = "retention.view_record_of_processing"


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
