"""LOCAL_LOGIN=0: a password signs in only the break-glass accounts; everyone else uses SSO.

allauth's authentication backend, refusing the password path before any password is checked
for a name not in BREAK_GLASS_USERS, so the refusal says nothing about the password. The person
is told why on the sign-in page. With LOCAL_LOGIN=1 (the default) it is allauth's backend as is.
"""

import logging
from typing import Any

from allauth.account.auth_backends import AuthenticationBackend
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from access.backends import OneStatementUser

log = logging.getLogger("clientwindow.security")

REFUSED = "Password sign-in is switched off here: use the single sign-on button."


def is_break_glass(name: str) -> bool:
    return name.casefold() in {user.casefold() for user in settings.BREAK_GLASS_USERS}


class LocalLoginPolicy(OneStatementUser, AuthenticationBackend):  # type: ignore[misc]  # allauth is untyped
    def authenticate(
        self, request: HttpRequest | None, **credentials: Any
    ) -> AbstractBaseUser | None:
        if settings.LOCAL_LOGIN or not credentials.get("password"):
            return self._allauth(request, credentials)
        typed = str(credentials.get("username") or credentials.get("email") or "")
        if is_break_glass(typed):
            log.info("Break-glass password sign-in attempted for %s", typed[:150])
            return self._allauth(request, credentials)
        if request is not None and hasattr(request, "_messages"):
            messages.error(request, REFUSED)
        return None

    def _allauth(
        self, request: HttpRequest | None, credentials: dict[str, Any]
    ) -> AbstractBaseUser | None:
        user: AbstractBaseUser | None = super().authenticate(request, **credentials)
        return user
