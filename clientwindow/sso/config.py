"""The single sign-on settings, read from the environment by clientwindow/settings.py.

Kept free of Django's apps so that settings can import it. A mistake is an ImproperlyConfigured
naming the variable, at start-up, not a surprise at the first sign-in.
"""

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

PROVIDER_ID = "sso"  # in the callback URL: /accounts/oidc/sso/login/callback/
ROLES = ("Reviewer", "Auditor", "Legal", "Administrator")  # access/roles.py's ROLES


def role_map(value: str) -> dict[str, str]:
    """OIDC_ROLE_MAP, "idp-group=Role,…" → {idp group: one of our four roles}."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        group, sep, role = (text.strip() for text in item.partition("="))
        if not sep or not group or role not in ROLES:
            raise ImproperlyConfigured(
                f"OIDC_ROLE_MAP: {item!r} must be <IdP group>=<role>, the role one of"
                f" {', '.join(ROLES)}"
            )
        mapping[group] = role
    return mapping


def issuer_origin(issuer: str) -> str:
    """The scheme://host[:port] the browser is sent to: allowed in CSP form-action."""
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ImproperlyConfigured(f"OIDC_ISSUER must be an https:// URL, not {issuer!r}")
    return f"{parts.scheme}://{parts.netloc}"


def providers(
    *, issuer: str, client_id: str, secret: str, scopes: str, name: str
) -> dict[str, Any]:
    """SOCIALACCOUNT_PROVIDERS: our provider class always (it owns the URLs), the app if set."""
    config: dict[str, Any] = {
        "provider_class": "clientwindow.sso.oidc.Provider",
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [],
    }
    if issuer:
        issuer_origin(issuer)
        if not client_id or not secret:
            raise ImproperlyConfigured(
                "OIDC_ISSUER is set: OIDC_CLIENT_ID and OIDC_CLIENT_SECRET must be too"
            )
        config["APPS"] = [
            {
                "provider_id": PROVIDER_ID,
                "name": name,
                "client_id": client_id,
                "secret": secret,
                "settings": {
                    "server_url": issuer,
                    "scope": scopes.split(),
                    "oauth_pkce_enabled": True,
                },
            }
        ]
    return {"openid_connect": config}
