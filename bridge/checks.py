"""System checks: routes that cannot work as configured, and replies that would be trusted on
their From header alone."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


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


UNAUTHENTICATED_SENDERS = (
    "BRIDGE_TRUSTED_AUTHSERV_ID is not set: a reply email would be trusted on its From header "
    "alone, which anyone can forge."
)
UNAUTHENTICATED_SENDERS_HINT = (
    "Set BRIDGE_TRUSTED_AUTHSERV_ID to your inbound mail server's authserv-id (docs/BRIDGE.md), "
    "or set BRIDGE_ALLOW_UNAUTHENTICATED_SENDERS=1 to accept that risk explicitly."
)


def unauthenticated_senders() -> bool:
    """Whether production would trust a reply's From without anyone having asked for that
    (the deploy check below, and manage.py run_mail_gateway, which refuses to start)."""
    return not (
        settings.LOCAL_RUN
        or settings.BRIDGE_TRUSTED_AUTHSERV_ID
        or settings.BRIDGE_ALLOW_UNAUTHENTICATED_SENDERS
    )


@register(deploy=True)
def senders_authenticated(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if not unauthenticated_senders():
        return []
    return [Error(UNAUTHENTICATED_SENDERS, hint=UNAUTHENTICATED_SENDERS_HINT, id="bridge.E003")]
