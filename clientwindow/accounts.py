"""Sign-in through django-allauth: no public sign-up, and a second factor for every account
that MFA_REQUIRED names.

MFA_REQUIRED is "all" (the default), "administrators" or "off". A signed-in user who must have
an authenticator app or a passkey but has neither is sent to the two-factor page until they add
one: only that page (and the rest of /accounts/: logout, re-authentication, recovery codes) and
static files answer meanwhile, so enrolment happens at the first sign-in. Recovery codes alone
do not count: they are the way back in, not a factor of their own. A session opened through
single sign-on is the identity provider's to protect with its own second factor.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.authentication import get_authentication_records
from allauth.core import context
from allauth.mfa.adapter import get_adapter as get_mfa_adapter
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.safestring import mark_safe

from access.lockout import client_address
from access.roles import ADMINISTRATOR, roles_of
from access.sessions import signed_in_recently

MFA_REQUIRED_CHOICES = ("all", "administrators", "off")
SECOND_FACTORS = [Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]
ENROL_MESSAGE = (
    "Your account needs a second factor before you can continue: add an authenticator app or a"
    " passkey."
)


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth is untyped
    """Accounts are made by administrators, never by visitors."""

    error_messages = {
        **DefaultAccountAdapter.error_messages,
        # a constant, marked safe so that its apostrophe is not escaped
        "username_password_mismatch": mark_safe(
            "Your username and password didn't match. Please try again."
        ),
    }

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        """allauth's failed-sign-in limit per name, counted per (name, address) here: counted
        per name alone, anyone who knows a colleague's user name could keep them out from
        everywhere with a few wrong passwords every five minutes (docs/ACCOUNTS.md, lockout)."""
        name = super()._get_login_attempts_cache_key(request, **credentials)
        return f"{name}@{client_address(request) or '-'}"

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        """A sign-in within ACCOUNT_REAUTHENTICATION_TIMEOUT counts as a re-authentication
        (access/sessions.py), so enrolment at first sign-in does not ask for the password twice;
        later, adding or removing a factor asks again."""
        if signed_in_recently(context.request):
            return False
        return bool(super().is_reauthentication_required(app=app, **kwargs))


def accept_username_field(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """allauth's login form names its field "login"; scripts and password managers that post
    the old form's "username" still sign in."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST" and "login" not in request.POST and "username" in request.POST:
            posted = request.POST.copy()
            posted["login"] = request.POST["username"]
            request.POST = posted  # type: ignore[assignment]  # a mutable copy, on purpose
        return view(request, *args, **kwargs)

    return wrapper


def mfa_required_for(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether MFA_REQUIRED asks this user for a second factor."""
    required = settings.MFA_REQUIRED
    if required not in MFA_REQUIRED_CHOICES:
        raise ImproperlyConfigured(
            f"MFA_REQUIRED must be one of {', '.join(MFA_REQUIRED_CHOICES)}; it is {required!r}"
        )
    if required == "off" or not user.is_authenticated:
        return False
    if required == "administrators":
        return bool(getattr(user, "is_superuser", False) or ADMINISTRATOR in roles_of(user))
    return True


def signed_in_through_sso(request: HttpRequest) -> bool:
    return any(
        record.get("method") == "socialaccount" for record in get_authentication_records(request)
    )


def must_enrol(request: HttpRequest) -> bool:
    """A signed-in user whom MFA_REQUIRED names, without a second factor yet."""
    user = request.user
    return (
        mfa_required_for(user)
        and not signed_in_through_sso(request)
        and not get_mfa_adapter().is_mfa_enabled(user, types=SECOND_FACTORS)
    )


class RequireSecondFactor:
    """Middleware (after allauth's AccountMiddleware): send a user who must enrol to the
    two-factor page, whatever they asked for."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self.open_during_enrolment(request.path) and must_enrol(request):
            messages.warning(request, ENROL_MESSAGE)
            return HttpResponseRedirect(reverse("mfa_index"))
        return self.get_response(request)

    @staticmethod
    def open_during_enrolment(path: str) -> bool:
        open_prefixes = (
            "/accounts/",  # allauth: the two-factor pages, logout, re-authentication
            reverse("logout"),
            "/" + settings.STATIC_URL.lstrip("/"),
            "/favicon.ico",
            "/healthz",
            "/readyz",
        )
        return path.startswith(open_prefixes)
