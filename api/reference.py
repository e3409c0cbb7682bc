"""The API's own description: the OpenAPI 3.1 schema at /api/schema/, and Swagger UI reading it
at /api/docs/, both for users with a role (a browser without a session goes to the login page).

Swagger UI comes from drf-spectacular-sidecar's static files (no CDN) and starts from a static
script of ours (api/static/api/reference.js), so the portal's Content-Security-Policy holds with
one addition on this page only: `img-src data:`, for the icons swagger-ui.css carries as data:
URLs (an image cannot run script). "Try it out" is offered for GET only: the CSRF cookie is
HttpOnly, so the page could not send a POST the server would take.
"""

from csp.decorators import csp_update
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from drf_spectacular.views import SpectacularAPIView

from access.roles import HasRole, role_required


@csp_update({"img-src": ["data:"]})
@role_required
def docs(request: HttpRequest) -> HttpResponse:
    return render(request, "api/reference.html")


urlpatterns: list[URLPattern] = [
    path("schema/", SpectacularAPIView.as_view(permission_classes=[HasRole]), name="api-schema"),
    path("docs/", docs, name="api-docs"),
]
