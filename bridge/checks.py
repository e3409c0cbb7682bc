"""System checks: routes that cannot work as configured."""

from typing import Any

from django.conf import settings
from django.core.checks import Warning, register


@register()
def email_configured(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if settings.EMAIL_BACKEND != "bridge.mail.UnconfiguredBackend":
        return []
    return [
        Warning(
            "EMAIL_URL is not set: staff notifications, journal copies and reply notices wait "
            "unsent.",
            hint="Set EMAIL_URL, e.g. smtp://relay.example.com:25 (deploy/env.example).",
            id="bridge.W001",
        )
    ]


@register(deploy=True)
def portal_url(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if settings.PORTAL_URL:
        return []
    return [
        Warning(
            "PORTAL_URL is not set: links in staff notifications are relative and open nothing.",
            hint="Set PORTAL_URL to the portal's public base URL, e.g. https://archive.example.com",
            id="bridge.W002",
        )
    ]
