"""/api/: version 1 of the REST API (docs/API.md) and its OpenAPI schema, for users with a role.

Each module under api/ serves one part and lists its own `urlpatterns`; an address under /api/
that none of them knows is a 404 problem, like every other API error (api/problems.py).
"""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.routers import SimpleRouter

from exports.api import ExportViewSet

from . import conversations, events, feed, legal, monitoring, problems, reference

router = SimpleRouter()
router.register("exports", ExportViewSet, basename="api-exports")


@csrf_exempt  # it changes nothing; else a POST here gets Django's HTML page for CSRF failures
def unknown(request: HttpRequest, rest: str = "") -> JsonResponse:
    return problems.response(request, 404, "not_found", "No API operation has this address.")


urlpatterns = [
    path("v1/", include(router.urls)),
    path("v1/", include(conversations.urlpatterns)),
    path("v1/", include(feed.urlpatterns)),
    path("v1/", include(events.urlpatterns)),
    path("v1/", include(legal.urlpatterns)),
    path("v1/", include(monitoring.urlpatterns)),
    path("", include(reference.urlpatterns)),  # the schema and its reader
    re_path(r"^(?P<rest>.*)$", unknown),
]
