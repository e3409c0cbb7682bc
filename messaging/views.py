"""Administrators' view of the capture path."""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from clientwindow.roles import ADMINISTRATOR, role_required, roles_of
from messaging.health import ingestion_health


@role_required
def ingestion(request: HttpRequest) -> HttpResponse:
    if ADMINISTRATOR not in roles_of(request.user):
        raise PermissionDenied("administrators only")
    return render(request, "messaging/ingestion.html", {"health": ingestion_health()})
