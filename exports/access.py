"""Who may create, see and download exports: the one access helper of the exports app, used by
the portal views, the API and nobody else (STYLE.md). Like every access helper it takes the
request (the portal's or the API's), as review/access.py's do.

Auditors, Legal and Administrators hold `exports.create_export`; a Reviewer exports only when an
administrator gives them that permission (per user, in the admin). Everyone sees their own
exports; Administrators (`exports.view_all_exports`) see everyone's. Anybody else's export is a
404, so that its existence is not disclosed.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from rest_framework.request import Request

from review.access import READ

from .models import Export

CREATE = "exports.create_export"
SEE_ALL = "exports.view_all_exports"


def require_export(request: HttpRequest | Request) -> None:
    user: Any = request.user
    if not (user.is_authenticated and user.has_perm(READ) and user.has_perm(CREATE)):
        raise PermissionDenied("Your role does not allow exports (create_export).")


def exports_for_user(request: HttpRequest | Request) -> QuerySet[Export]:
    require_export(request)
    user: Any = request.user
    exports = Export.objects.select_related("requested_by")
    return exports if user.has_perm(SEE_ALL) else exports.filter(requested_by_id=user.pk)


def export_for_user(request: HttpRequest | Request, pk: object) -> Export:
    return get_object_or_404(exports_for_user(request), pk=pk)
