"""Administrators' view of the capture path."""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from access.roles import ADMINISTRATOR, role_required, roles_of
from archive.status import integrity_summary
from messaging.health import check_backlog, ingestion_health


@role_required
def ingestion(request: HttpRequest) -> HttpResponse:
    if ADMINISTRATOR not in roles_of(request.user):
        raise PermissionDenied("administrators only")
    health = ingestion_health()
    check_backlog(health.backlog)  # an administrator looking is one more chance to raise it
    context = {"health": health, "integrity": integrity_summary()}
    return render(request, "messaging/ingestion.html", context)
