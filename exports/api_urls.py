"""/api/: version 1 of the REST API and its OpenAPI schema (for users with a role only)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from access.roles import HasRole
from exports.api import ExportViewSet

router = SimpleRouter()
router.register("exports", ExportViewSet, basename="api-exports")

urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[HasRole]), name="api-schema"),
]
