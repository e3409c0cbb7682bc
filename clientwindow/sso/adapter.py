"""The social-account adapter: who SSO creates, what roles they get, what a refusal looks like.

Accounts are created from the IdP at first sign-in (local sign-up stays closed: that is the
account adapter's rule, clientwindow/accounts.py), named by `preferred_username` or else the
subject. An SSO sign-in never links to an existing local account by email. Every refusal is
one line on the clientwindow.security log and a "failed to sign in" access event; no token,
code or claim value is logged.
"""

import logging
from typing import Any

from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from django.contrib.auth.models import User
from django.http import HttpRequest

from access.lockout import client_address
from clientwindow.sso.oidc import Refused
from clientwindow.sso.roles import apply_roles, roles_from_claims
from review.models import AccessEvent

log = logging.getLogger("clientwindow.security")

USED_STATE = "this sign-in was already completed or has expired: start again"
UNKNOWN = "the identity provider's answer could not be used"


def _claims(sociallogin: SocialLogin) -> dict[str, Any]:
    data = sociallogin.account.extra_data or {}
    return {**(data.get("id_token") or {}), **(data.get("userinfo") or {})}


def refusal_reason(
    error: Any, exception: BaseException | None, extra_context: dict[str, Any]
) -> str:
    """What the person is told, and the log says, when an SSO sign-in is refused."""
    if isinstance(exception, Refused):
        return str(exception)
    if "state_id" in extra_context:  # allauth found no such state in this session
        return USED_STATE
    if error == "cancelled":
        return "the sign-in was cancelled at the identity provider"
    if exception is None:
        return "the identity provider refused the sign-in"
    return UNKNOWN


class SocialAccountAdapter(DefaultSocialAccountAdapter):  # type: ignore[misc]  # allauth is untyped
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True

    def is_auto_signup_allowed(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data: Any) -> User:
        user: User = super().populate_user(request, sociallogin, data)
        claims = _claims(sociallogin)
        wanted = str(claims.get("preferred_username") or sociallogin.account.uid)[:150]
        user.username = get_account_adapter(request).generate_unique_username([wanted, "user"])
        return user

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        if sociallogin.is_existing:
            apply_roles(sociallogin.user, roles_from_claims(_claims(sociallogin)))
            return
        # An address another account has is not taken over (nor joined): the new user goes
        # without it, rather than to a sign-up form.
        taken = {
            address.email
            for address in sociallogin.email_addresses
            if User.objects.filter(email__iexact=address.email).exists()
        }
        sociallogin.email_addresses = [
            address for address in sociallogin.email_addresses if address.email not in taken
        ]
        if sociallogin.user.email in taken:
            sociallogin.user.email = ""

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None) -> User:
        user: User = super().save_user(request, sociallogin, form)
        apply_roles(user, roles_from_claims(_claims(sociallogin)))
        return user

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: Any = None,
        exception: BaseException | None = None,
        extra_context: dict[str, Any] | None = None,
    ) -> None:
        extra_context = {} if extra_context is None else extra_context
        reason = refusal_reason(error, exception, extra_context)
        log.warning("SSO sign-in refused (%s): %s", getattr(provider, "name", "?"), reason)
        AccessEvent.objects.create(
            user=None,
            username="",
            address=client_address(request),
            action=AccessEvent.Action.LOGIN_FAILED,
            detail={"method": "sso", "reason": reason},
        )
        extra_context["refusal_reason"] = reason
