"""Account events in the access log (review.AccessEvent), and changes to accounts in the audit
log (django-auditlog): what a security review asks to see of who got in, how, and who changed
whose access.

Access events: a sign-in and how it was done (password, with which second factor; a passkey;
single sign-on and its provider), a sign-out, a failed sign-in under the name as typed (the
account when one has that name; never the password), a second factor added, regenerated,
removed or failed, and a re-authentication. Lockouts (access/sessions.py) and API
tokens (clientwindow/tokens.py) write their own.

Only sign-ins through an HTTP request are recorded: the test client's force_login() and a shell's
login() have no address and no form, and there is nothing of theirs to audit.
"""

import logging
from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.account.signals import authentication_step_completed
from allauth.mfa import signals as mfa_signals
from allauth.mfa.models import Authenticator
from auditlog.registry import auditlog
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model, signals
from django.http import HttpRequest

from access.lockout import client_address
from review.models import AccessEvent

security = logging.getLogger("clientwindow.security")
Action = AccessEvent.Action


def _through_http(request: HttpRequest | None) -> bool:
    return request is not None and request.method is not None


def _record(
    request: HttpRequest,
    action: str,
    user: Any,
    username: str = "",
    authenticator: Authenticator | None = None,
    **detail: Any,
) -> None:
    if authenticator is not None:
        detail["type"] = authenticator.type
    AccessEvent.objects.create(
        user_id=user.pk if user is not None else None,
        username=(user.get_username() if user is not None else username)[:150],
        address=client_address(request),
        action=action,
        object_type="authenticator" if authenticator is not None else "",
        object_id=str(authenticator.pk) if authenticator is not None else "",
        detail=detail,
    )


def how_signed_in(request: HttpRequest, user: Any) -> dict[str, str]:
    """How this sign-in was done, from the steps allauth noted in the session."""
    steps = [
        step
        for step in get_authentication_records(request, user)
        if not step.get("reauthenticated")
    ]
    methods = {step["method"]: step for step in steps}
    if "socialaccount" in methods:
        return {"how": "sso", "provider": str(methods["socialaccount"].get("provider", ""))}
    second = methods.get("mfa", {})
    if second.get("passwordless"):
        return {"how": "passkey"}
    if "password" in methods or "password" in request.POST:
        how = {"how": "password"}
        if second:
            how["second_factor"] = str(second.get("type", ""))
        return how
    return {"how": steps[-1]["method"] if steps else "unknown"}


def on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if _through_http(request):
        assert request is not None
        _record(request, Action.LOGIN, user, **how_signed_in(request, user))


def on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if _through_http(request) and user is not None:
        assert request is not None
        _record(request, Action.LOGOUT, user)


def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django has already masked the password in `credentials`; only the name is read.
    if not _through_http(request):
        return
    assert request is not None
    typed = str(credentials.get("username") or credentials.get("email") or "")[:150]
    user = get_user_model()._default_manager.filter(username=typed).first() if typed else None
    _record(request, Action.LOGIN_FAILED, user, username=typed)
    security.info(
        "sign-in failed from %s (%s account)",
        client_address(request),
        "an existing" if user is not None else "no such",
    )


def on_authenticator_added(
    sender: Any, request: HttpRequest, user: Any, authenticator: Authenticator, **kwargs: Any
) -> None:
    _record(request, Action.MFA_ADDED, user, authenticator=authenticator)


def on_authenticator_reset(
    sender: Any, request: HttpRequest, user: Any, authenticator: Authenticator, **kwargs: Any
) -> None:
    # New recovery codes replace the old ones: a second factor added, in effect.
    _record(request, Action.MFA_ADDED, user, authenticator=authenticator, regenerated=True)


def on_authenticator_removed(
    sender: Any, request: HttpRequest, user: Any, authenticator: Authenticator, **kwargs: Any
) -> None:
    _record(request, Action.MFA_REMOVED, user, authenticator=authenticator)


def on_mfa_failed(
    sender: Any, request: HttpRequest, user: Any, authenticator: Authenticator, **kwargs: Any
) -> None:
    reauthentication = bool(kwargs.get("reauthentication"))
    _record(
        request,
        Action.MFA_FAILED,
        user,
        authenticator=authenticator,
        reauthentication=reauthentication,
    )
    security.info("second-factor check failed from %s", client_address(request))


def on_step(sender: Any, request: HttpRequest, user: Any, method: str, **kwargs: Any) -> None:
    # allauth has no signal of its own for re-authentication: it is a step marked as one.
    if kwargs.get("reauthenticated"):
        detail = {"method": method}
        if kwargs.get("type"):
            detail["type"] = str(kwargs["type"])
        _record(request, Action.REAUTHENTICATED, user, **detail)


def on_locked_out(
    sender: object, request: HttpRequest, username: str | None, ip_address: str | None, **_: Any
) -> None:
    """A LOCKED_OUT event (django-axes, access/lockout.py), naming what was typed."""
    AccessEvent.objects.create(
        user=None,
        username=(username or "")[:150],
        address=ip_address or None,
        action=Action.LOCKED_OUT,
        detail={"cooloff_minutes": settings.LOGIN_COOLOFF_MINUTES},
    )


def connect() -> None:
    """Called once, from ClientWindowConfig.ready()."""
    receivers = [
        (signals.user_logged_in, on_login),
        (signals.user_logged_out, on_logout),
        (signals.user_login_failed, on_login_failed),
        (mfa_signals.authenticator_added, on_authenticator_added),
        (mfa_signals.authenticator_reset, on_authenticator_reset),
        (mfa_signals.authenticator_removed, on_authenticator_removed),
        (mfa_signals.authentication_failed, on_mfa_failed),
        (authentication_step_completed, on_step),
        (user_locked_out, on_locked_out),
    ]
    for signal, receiver in receivers:
        signal.connect(receiver, dispatch_uid=f"clientwindow.account_events.{receiver.__name__}")


def register_audit() -> None:
    """django-auditlog records every change to accounts: who changed whose groups and granted
    permissions (retention/disposition.py reads this to keep an approver independent), and
    second factors added or removed; never a password, a secret or a key (`data`), nor every
    use (`last_used_at`).

    review/audit.py registers User and Group too, later (apps' order): it overwrites the field
    options with the same ones and leaves the groups and permissions receivers connected here."""
    auditlog.register(
        get_user_model(),
        exclude_fields=["password", "last_login"],
        m2m_fields={"groups", "user_permissions"},
    )
    auditlog.register(Authenticator, exclude_fields=["data", "last_used_at"])
