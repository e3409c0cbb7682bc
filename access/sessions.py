"""Session policy: an idle timeout, an absolute lifetime, and "recently signed in" for the
portal's sensitive actions.

The session cookie dies with the browser (SESSION_EXPIRE_AT_BROWSER_CLOSE) and the server
forgets a session SESSION_MAX_HOURS after sign-in whatever happens (SESSION_COOKIE_AGE). This
middleware adds the idle rule: a session untouched for SESSION_IDLE_MINUTES is signed out and
sent to the sign-in page with a notice. Requests that poll in the background (htmx "every 2s"
on an export's progress) do not count as activity, or an open tab would never time out.
"""

import time
from collections.abc import Callable
from typing import Any

from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages as notices
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import resolve_url

LAST_ACTIVE = "clientwindow_last_active"
SIGNED_IN = "clientwindow_signed_in"


# Elements that poll on a timer (hx-trigger="every …"); htmx names the element in HX-Trigger.
# templates/exports/detail.html: an export's progress, every 2 s while it runs.
POLLING_ELEMENTS = frozenset({"progress"})


# Activity is recorded to the minute: the idle timeout is kept within a minute, and a page
# that fires many requests writes the session once.
ACTIVITY_GRAIN = 60


def is_background(request: HttpRequest) -> bool:
    """A request fired by a timer, not by the person."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Trigger", "") in POLLING_ELEMENTS
    )


@receiver(user_logged_in)
def start_clock(sender: object, request: HttpRequest | None, **_: Any) -> None:
    """The absolute lifetime counts from sign-in."""
    if request is not None and hasattr(request, "session"):
        request.session[SIGNED_IN] = request.session[LAST_ACTIVE] = time.time()


class SessionPolicy:
    """Signs out a session idle for too long, or older than its absolute lifetime."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> HttpResponseBase | None:
        """Views marked `sessionless` (the ledger's read API) neither count as activity nor
        sign anyone out: they never read or write a session, so they never set a cookie."""
        if getattr(view, "sessionless", False) or not request.user.is_authenticated:
            return None
        expired = self.expired(request)
        return self.sign_out(request, expired) if expired else None

    def expired(self, request: HttpRequest) -> str:
        """Why this session is over ("" while it is not); records activity otherwise."""
        now = time.time()
        session = request.session
        signed_in = session.setdefault(SIGNED_IN, now)
        last_active = session.get(LAST_ACTIVE, now)
        if now - signed_in > settings.SESSION_MAX_HOURS * 3600:
            return f"You were signed out {settings.SESSION_MAX_HOURS} hours after signing in."
        if now - last_active > settings.SESSION_IDLE_MINUTES * 60:
            return (
                f"You were signed out after {settings.SESSION_IDLE_MINUTES} minutes of inactivity."
            )
        fresh = LAST_ACTIVE not in session or now - last_active >= ACTIVITY_GRAIN
        if fresh and not is_background(request):
            session[LAST_ACTIVE] = now  # once a minute at most: not a session write per request
        return ""

    def sign_out(self, request: HttpRequest, reason: str) -> HttpResponse:
        logout(request)  # a new, empty session: the notice below is stored in it
        notices.info(request, reason)
        if request.headers.get("HX-Request") == "true":
            response = HttpResponse(status=204)
            response["HX-Redirect"] = resolve_url(settings.LOGIN_URL)
            return response
        return redirect_to_login(request.get_full_path())


def signed_in_recently(request: HttpRequest) -> bool:
    """Whether the person signed in within ACCOUNT_REAUTHENTICATION_TIMEOUT seconds: a sign-in
    (password and second factor, passkey, or single sign-on) a minute ago is as fresh as a
    re-authentication, so it is not asked for twice."""
    signed_in = float(request.session.get(SIGNED_IN, 0))
    return time.time() - signed_in < settings.ACCOUNT_REAUTHENTICATION_TIMEOUT


def _needs_reauthentication(request: HttpRequest) -> bool:
    return not signed_in_recently(request)


def recent_authentication_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """allauth's reauthentication_required, satisfied too by a sign-in within its timeout.

    Past it, a POST is suspended, the person confirms their password or second factor on
    allauth's page, and the POST is replayed."""
    return reauthentication_required(view, enabled=_needs_reauthentication)  # type: ignore[no-any-return]
