"""The API's own description: the OpenAPI 3.1 schema at /api/schema/, for users with a role."""

from django.urls import URLPattern, path
from drf_spectacular.views import SpectacularAPIView

from access.roles import HasRole

urlpatterns: list[URLPattern] = [
    path("schema/", SpectacularAPIView.as_view(permission_classes=[HasRole]), name="api-schema"),
]
