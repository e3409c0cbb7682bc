"""Lockout after repeated failed sign-ins (django-axes), counted where an attacker cannot turn it
against a named person.

Failures are counted per (name typed, client address) and per client address, never per name
alone: someone who knows a colleague's user name can lock that name out only from their own
address, not from everywhere. A pair is locked after LOGIN_FAILURE_LIMIT failures, an address
after LOGIN_ADDRESS_FAILURE_LIMIT (higher: an office shares one address); both for
LOGIN_COOLOFF_MINUTES. The counts live in PostgreSQL, so every web node sees the same ones.
"""

from datetime import timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

USERNAME_MAX = 150


class PairAndAddressHandler(AxesDatabaseHandler):  # type: ignore[misc]  # axes is untyped
    """Axes' database handler with two limits: one per (name, address), a higher one per address.

    AXES_LOCKOUT_PARAMETERS lists the pair first and the address second (settings.py), so
    axes hands us the two sets of attempts in that order.
    """

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        pair, address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        if address >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            return int(max(pair, settings.AXES_FAILURE_LIMIT))
        return int(pair)

    def reset_user_attempts(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        """A success clears its own pair only: one good password must not wipe the address's
        count of failures against other names (password spraying from one machine)."""
        pair = self.filter_user_attempts(request, credentials)[0]
        deleted, _ = pair.delete()
        return int(deleted)


def client_address(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or the address the nearest of TRUSTED_PROXY_COUNT proxies saw: the header's
    entries left of those are whatever the client wrote, so they are never believed."""
    if settings.TRUSTED_PROXY_COUNT:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(forwarded) >= settings.TRUSTED_PROXY_COUNT and forwarded[0]:
            return str(forwarded[-settings.TRUSTED_PROXY_COUNT])
    address = request.META.get("REMOTE_ADDR")
    return str(address) if address else None


def username_typed(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str:
    """The name a sign-in was tried with: allauth's "login" field or Django's "username"."""
    if credentials:
        # axes files the name under AXES_USERNAME_FORM_FIELD ("login"); Django's signal under
        # "username"
        name = credentials.get("login") or credentials.get("username") or ""
    else:
        name = request.POST.get("login") or request.POST.get("username") or ""
    return str(name)[:USERNAME_MAX]


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The answer to a locked-out sign-in: a plain page saying when to try again (429)."""
    cooloff = timedelta(minutes=settings.LOGIN_COOLOFF_MINUTES)
    context = {"minutes": settings.LOGIN_COOLOFF_MINUTES, "until": timezone.now() + cooloff}
    return render(request, "access/locked_out.html", context, status=429)
