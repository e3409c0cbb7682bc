"""Roles from the identity provider's claim: exactly what the claim maps to, at every sign-in.

Only our four role groups are touched; any other group a user is in stays. Administrator makes a
user staff (the admin site), never a superuser: superusers are local, break-glass accounts.
"""

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User

from access.roles import ADMINISTRATOR, ROLES

log = logging.getLogger("clientwindow.security")


def roles_from_claims(claims: Mapping[str, Any]) -> set[str]:
    """The roles OIDC_ROLE_MAP gives the IdP groups in the OIDC_ROLES_CLAIM claim."""
    value = claims.get(settings.OIDC_ROLES_CLAIM)
    if value is None:
        return set()
    groups = [value] if isinstance(value, str) else value
    if not isinstance(groups, list) or not all(isinstance(group, str) for group in groups):
        log.warning("SSO: the %r claim is not a list of names; no roles", settings.OIDC_ROLES_CLAIM)
        return set()
    return {settings.OIDC_ROLE_MAP[group] for group in groups if group in settings.OIDC_ROLE_MAP}


def apply_roles(user: User, roles: set[str]) -> None:
    """Give the user exactly these roles (of our four), staff only as an Administrator."""
    current = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    user.groups.remove(*Group.objects.filter(name__in=current - roles))
    user.groups.add(*Group.objects.filter(name__in=roles - current))
    user.is_staff = ADMINISTRATOR in roles
    user.is_superuser = False
    user.save(update_fields=["is_staff", "is_superuser"])
    if current != roles:
        log.info(
            "SSO: roles of user %s set from the identity provider: %s (were %s)",
            user.pk,
            ", ".join(sorted(roles)) or "none",
            ", ".join(sorted(current)) or "none",
        )
