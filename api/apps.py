from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The REST API (/api/v1/, docs/API.md): the floor above every app it serves."""

    name = "api"
    label = "api"
    verbose_name = "REST API"
