"""API tokens: issuing, revoking, and DRF's authentication by `Authorization: Bearer <token>`.

A token is its owner: the API sees the owner as request.user, with the owner's permissions and
no more, so a deactivated owner's tokens stop working with the account. Superusers hold none.
`Token <token>` (DRF's old keyword) is still accepted, for clients written against it.

A refused token (unknown, expired, revoked, malformed, its owner deactivated) is a 401 naming
the reason and an access event TOKEN_REFUSED with the token's first characters only. Those
events are also the throttle: after API_TOKEN_FAILURE_LIMIT refusals from one address in
FAILURE_WINDOW, that address gets 429 until the oldest of them ages out. Counting rows in
PostgreSQL rather than in Django's cache keeps the count right across web nodes (the cache is
per process here) at the cost of one query per token request, on the access log's time index.
"""

import hashlib
import hmac
import math
import re
import secrets
from datetime import timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from access.lockout import client_address
from clientwindow.models import PREFIX_LENGTH, ApiToken
from review.access import acting_user, record_access
from review.models import AccessEvent

KEYWORDS = (b"bearer", b"token")
# ours are 51 URL-safe base64 characters, DRF's migrated keys 40 hex digits
TOKEN_SHAPE = re.compile(rb"[A-Za-z0-9_-]{8,100}")
TOKEN_ISSUED = AccessEvent.Action.TOKEN_ISSUED
TOKEN_REVOKED = AccessEvent.Action.TOKEN_REVOKED
FAILURE_WINDOW = timedelta(minutes=10)
# last_used_at is written at most this often per token, to spare a write per request.
LAST_USED_PRECISION = timedelta(minutes=1)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(request: HttpRequest, name: str, days: int) -> tuple[ApiToken, str]:
    """A new token for the requesting user, and its secret: the only time the secret is seen."""
    token, secret = new_token(acting_user(request), name, days)
    record_access(request, TOKEN_ISSUED, "apitoken", token.pk, described(token))
    return token, secret


def new_token(owner: Any, name: str, days: int) -> tuple[ApiToken, str]:
    """issue()'s work, without the access event (tests and scripts acting for a user)."""
    if owner.is_superuser:
        raise ValidationError("Superusers cannot hold API tokens: a token would act as one.")
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise ValidationError(
            f"A token lasts between 1 and {settings.API_TOKEN_MAX_DAYS} days, not {days}."
        )
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    secret = prefix + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        owner=owner,
        name=name,
        prefix=prefix,
        hash=digest(secret),
        expires_at=timezone.now() + timedelta(days=days),
    )
    return token, secret


def revoke(request: HttpRequest, token: ApiToken) -> bool:
    """Revoke token (its owner or an administrator asks); False if it already was revoked."""
    now, by = timezone.now(), acting_user(request)
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_by=by
    )
    if revoked:
        token.revoked_at, token.revoked_by = now, by
        record_access(request, TOKEN_REVOKED, "apitoken", token.pk, described(token))
    return bool(revoked)


def described(token: ApiToken) -> dict[str, str]:
    """What the access log says about a token: never its secret or digest."""
    return {"prefix": token.prefix, "name": token.name, "owner": token.owner.get_username()}


def find(secret: str) -> tuple[ApiToken | None, str]:
    """The token with this secret and "" if it may be used; else the token if known and why not."""
    wanted = digest(secret)
    candidates = ApiToken.objects.filter(prefix=secret[:PREFIX_LENGTH]).select_related("owner")
    # compare_digest: how long the comparison takes says nothing about the stored digest
    token = next((t for t in candidates if hmac.compare_digest(t.hash, wanted)), None)
    if token is None:
        return None, "Unknown token."
    if token.revoked_at is not None:
        return token, "This token has been revoked."
    if token.expires_at <= timezone.now():
        return token, "This token has expired."
    if not token.owner.is_active:
        return token, "The token's account is deactivated."
    if token.owner.is_superuser:
        return token, "Superusers cannot use API tokens."
    return token, ""


def mark_used(token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is not None and token.last_used_at > now - LAST_USED_PRECISION:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_PRECISION)
    ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)
    token.last_used_at = now


def seconds_throttled(address: str | None) -> int:
    """How long this address must wait before presenting a token again (0: it need not)."""
    now = timezone.now()
    limit = settings.API_TOKEN_FAILURE_LIMIT
    refusals = AccessEvent.objects.filter(
        action=AccessEvent.Action.TOKEN_REFUSED, address=address, at__gt=now - FAILURE_WINDOW
    )
    # the limit-th newest refusal: when it leaves the window, the address is below the limit
    oldest_counted = refusals.order_by("-at").values_list("at", flat=True)[limit - 1 : limit]
    if not oldest_counted:
        return 0
    return max(1, math.ceil((oldest_counted[0] + FAILURE_WINDOW - now).total_seconds()))


def refuse(request: Request, reason: str, presented: str, token: ApiToken | None) -> NoReturn:
    AccessEvent.objects.create(
        user=token.owner if token else None,
        username=token.owner.get_username() if token else "",
        at=timezone.now(),  # not the database's clock: the throttle compares against this one
        address=client_address(request),
        action=AccessEvent.Action.TOKEN_REFUSED,
        object_type="apitoken" if token else "",
        object_id=str(token.pk) if token else "",
        # the first characters only (TOKEN_SHAPE's): enough to tell tokens apart, never the secret
        detail={"prefix": presented[:PREFIX_LENGTH], "reason": reason},
    )
    raise exceptions.AuthenticationFailed(reason)


class BearerAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` (or `Token <token>`) → the token's owner."""

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        words = get_authorization_header(request).split()
        if not words or words[0].lower() not in KEYWORDS:
            return None  # not ours: session authentication may still answer
        wait = seconds_throttled(client_address(request))
        if wait:
            raise exceptions.Throttled(wait, "Too many refused tokens from this address.")
        if len(words) != 2:
            refuse(
                request,
                "Malformed Authorization header: give one token after the keyword.",
                "",
                None,
            )
        if not TOKEN_SHAPE.fullmatch(words[1]):
            refuse(request, "Malformed token: not the characters a token is made of.", "", None)
        presented = words[1].decode()
        token, reason = find(presented)
        if token is None or reason:
            refuse(request, reason, presented, token)
        mark_used(token)
        return token.owner, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'  # makes refusals 401s, not 403s


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """How the API schema (/api/schema/) describes BearerAuthentication: HTTP bearer tokens."""

    target_class = "clientwindow.tokens.BearerAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token issued at /tokens/ (`Token <token>` is accepted too).",
        }
