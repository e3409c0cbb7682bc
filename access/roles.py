"""The portal's roles: Django groups, created by clientwindow/migrations, with their permissions.

A user's roles are their groups. A user with no role sees nothing but a notice.
"""

from collections.abc import Callable
from contextvars import ContextVar
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import connection
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from archive import prepared

REVIEWER = "Reviewer"
AUDITOR = "Auditor"
LEGAL = "Legal"
ADMINISTRATOR = "Administrator"
ROLES = (REVIEWER, AUDITOR, LEGAL, ADMINISTRATOR)

# Permissions each role holds ("app_label.codename"). Later issues add their own here and in a
# data migration that re-applies this table.
READ = ("review.read_archive",)
REVIEW = ("review.tag_archive", "review.raise_flag", "review.decide_flag")
# Reviewers export only if an administrator gives them this permission (per user, in the admin).
EXPORT = ("exports.create_export",)
# Retention: Legal holds and answers data subjects; Administrators also dispose and set policies;
# Auditors look. Nobody deletes a policy (records point at it; retention/admin.py agrees).
LEGAL_RETENTION = (
    "retention.manage_holds",
    "retention.view_legalhold",
    "retention.add_erasurerequest",
    "retention.view_erasurerequest",
    "retention.view_record_of_processing",
    "retention.view_retentionpolicy",
)
AUDIT_RETENTION = (
    "retention.view_retentionpolicy",
    "retention.view_legalhold",
    "retention.view_disposition",
    "retention.view_record_of_processing",
)
# The bridge: reviewers reply to clients from the portal only if an administrator gives them
# this permission (per user, in the admin); administrators configure routes and templates.
REPLY = ("bridge.reply_to_client",)
# Importing phone "Export chat" files (issue 18): Legal and Administrators; anyone else only if an
# administrator gives them this permission (per user, in the admin).
IMPORT = ("imports.import_chat",)
# All that the admin lets a non-superuser administrator give one user besides roles.
GRANTABLE = (*EXPORT, *REPLY, *IMPORT)
BRIDGE_ADMIN = (
    *(
        f"bridge.{action}_{model}"
        for model in ("route", "messagetemplate")
        for action in ("view", "add", "change")
    ),
    "bridge.view_notification",
    "bridge.view_inboundemail",
    "bridge.view_outbound",
    "bridge.view_reconciliation",
)
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    REVIEWER: ("archive.view_integrity", *READ, *REVIEW),
    AUDITOR: (
        "archive.view_integrity",
        "archive.view_evidence",
        *READ,
        *EXPORT,
        *AUDIT_RETENTION,
        "bridge.view_reconciliation",
    ),
    LEGAL: (
        "archive.view_integrity",
        "archive.view_evidence",
        *READ,
        *EXPORT,
        *LEGAL_RETENTION,
        *IMPORT,
    ),
    ADMINISTRATOR: (
        "archive.view_integrity",
        "archive.view_evidence",
        *READ,
        *REVIEW,
        *EXPORT,
        "exports.view_all_exports",
        *IMPORT,
        "imports.view_importjob",  # every user's imports, not only their own (imports/access.py)
        *LEGAL_RETENTION,
        "retention.apply_retention",
        "retention.view_disposition",
        "retention.add_retentionpolicy",
        "retention.change_retentionpolicy",
        *BRIDGE_ADMIN,
        # API tokens: the admin's "Tokens" page (rest_framework.authtoken's TokenProxy)
        *(f"authtoken.{action}_tokenproxy" for action in ("view", "add", "delete")),
        *(
            f"review.{action}_{model}"
            for model in ("tag", "lexiconpolicy", "lexiconterm", "samplingpolicy")
            for action in ("view", "add", "change", "delete")
        ),
        "review.view_flag",
        "review.view_reviewdecision",
        "review.view_samplingdraw",
        "review.view_accessevent",
        "auditlog.view_logentry",
        # Lockouts (django-axes): see failed sign-ins and lockouts, and lift one early.
        "axes.view_accessattempt",
        "axes.delete_accessattempt",
        "axes.view_accesslog",
        "axes.view_accessfailurelog",
        "archive.view_ledgerentry",
        "archive.view_checkpoint",
        "archive.view_verificationrun",
        "messaging.view_channel",
        "messaging.add_channel",
        "messaging.change_channel",
        "messaging.view_delivery",
        "messaging.view_unparseditem",
        "messaging.view_reseal",
        "messaging.add_reseal",  # re-seal unparsed items (the admin's action)
        "messaging.view_message",
        "messaging.view_statusevent",
        "messaging.view_accountevent",
        "messaging.view_attachment",
        "messaging.view_mediaattempt",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
    ),
}


# A user's groups and both kinds of permission in one statement (the three that Django's
# ModelBackend and a plain `groups` read would send): every portal request asks for the roles
# (role_required) and for a permission (review.access), and reads them fresh, so a role or
# permission taken away counts from the next request, in every process, with nothing to
# invalidate. The tables are django.contrib.auth's own. The permissions come as ids, named
# through `_permission_names`: joining each to its content type made the statement's planning
# most of its 0.52 ms on every request (0.24 ms without, docs/SCALE.md §7t). The session's
# user is read with them (`_USER`, access.backends), so a request sends one statement for both.
_ARRAYS = """
  ARRAY(SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id
        WHERE ug.user_id = %(user)s),
  ARRAY(SELECT up.permission_id FROM auth_user_user_permissions up
        WHERE up.user_id = %(user)s),
  ARRAY(SELECT gp.permission_id FROM auth_group_permissions gp
        JOIN auth_user_groups ug ON ug.group_id = gp.group_id
        WHERE ug.user_id = %(user)s)
"""
_AUTHORIZATION = f"SELECT {_ARRAYS}"
# The signed-in user's row with the same three arrays (access.backends: the session's user).
# Its columns are the model's, in the model's order, as `Model.from_db` takes them.
_USER_FIELDS = [field.attname for field in User._meta.concrete_fields]
_USER_COLUMNS = ", ".join(
    f"u.{connection.ops.quote_name(field.column or field.attname)}"
    for field in User._meta.concrete_fields
)
_PK_COLUMN = _USER_FIELDS.index(User._meta.pk.attname)
_USER_TABLE = User._meta.db_table
_USER = f"SELECT {_USER_COLUMNS}, {_ARRAYS} FROM {_USER_TABLE} u WHERE u.id = %(user)s"  # noqa: S608
# The same row read by another statement beside its own (the session's, access.session_store):
# the user %(user)s joined as `u` (LEFT JOIN: every column NULL when there is no such user).
USER_JOINED = (
    f"{_USER_COLUMNS}, {_ARRAYS}",
    f"LEFT JOIN {_USER_TABLE} u ON u.id = %(user)s",
)
# A user's row read by the session's statement, for `user_with_authorization` to take instead of
# sending its own: (the user's id, the row). Set when a session is read, taken once, and emptied
# at every request's start (access.apps), so that no request takes another's.
_read_with_session: ContextVar[tuple[Any, tuple[Any, ...]] | None] = ContextVar(
    "read_with_session", default=None
)
_PERMISSIONS = """
SELECT p.id, ct.app_label || '.' || p.codename FROM auth_permission p
JOIN django_content_type ct ON ct.id = p.content_type_id
"""
# Every permission's "app_label.codename" by id, read once a process and again whenever a user
# holds one it has not seen (a permission added since). Permissions are made by migrations
# and never renamed; their ids come from a sequence, so an id never names another one.
_permission_name: dict[int, str] = {}


def _permission_names(ids: list[int]) -> set[str]:
    global _permission_name  # replaced whole, never changed in place
    if any(i not in _permission_name for i in ids):
        with connection.cursor() as cursor:
            cursor.execute(_PERMISSIONS)
            _permission_name = dict(cursor.fetchall())
    return {_permission_name[i] for i in ids if i in _permission_name}


def roles_of(user: AbstractBaseUser | AnonymousUser) -> list[str]:
    """The user's roles, read once per request (the user object is the request's own).

    A user model other than django.contrib.auth's, or a superuser (whom ModelBackend gives
    every permission), is read the ordinary way. For the others, the permissions read with the
    roles are handed to ModelBackend as the caches it would have filled itself (`_user_perm_cache`,
    `_group_perm_cache`, `_perm_cache`), so `has_perm` sends no statement of its own."""
    if not user.is_authenticated:
        return []
    cached: list[str] | None = getattr(user, "_clientwindow_roles", None)
    if cached is not None:  # asked by role_required and again by the template context
        return cached
    if not isinstance(user, User) or user.pk is None:
        groups = getattr(user, "groups", None)
        names = set(groups.values_list("name", flat=True)) if groups is not None else set()
    else:
        read_with_user = getattr(user, "_clientwindow_authorization", None)
        if read_with_user is None:
            with connection.cursor() as cursor:
                cursor.execute(_AUTHORIZATION, {"user": user.pk})
                read_with_user = cursor.fetchone()
        group_names, own_ids, through_group_ids = read_with_user
        names = set(group_names)
        if user.is_active and not user.is_superuser and not hasattr(user, "_perm_cache"):
            own = _permission_names(own_ids)
            through_groups = _permission_names(through_group_ids)
            user._user_perm_cache = own  # type: ignore[attr-defined]
            user._group_perm_cache = through_groups  # type: ignore[attr-defined]
            user._perm_cache = own | through_groups  # type: ignore[attr-defined]
    roles = [role for role in ROLES if role in names]
    user._clientwindow_roles = roles  # type: ignore[attr-defined]
    return roles


def read_with_session(user_id: Any, row: tuple[Any, ...]) -> None:
    """`row` (USER_JOINED's columns) is user `user_id`'s, read just now by the session's
    statement: the next `user_with_authorization` of that user in this request takes it."""
    _read_with_session.set((user_id, row))


def forget_read_with_session(**_: Any) -> None:
    """No user read with a session before now is taken (a request_started receiver)."""
    _read_with_session.set(None)


def user_with_authorization(user_id: Any) -> User | None:
    """The user `user_id` (None if there is none), read in one statement with what `roles_of`
    reads, which it then takes from the user instead of asking again: the session's user and
    its roles, at the request's start (access.backends). When this request's session was read
    with this user (read_with_session), with no statement at all."""
    pk = User._meta.pk.to_python(user_id)
    read = _read_with_session.get()
    if read is not None and read[0] == pk:
        _read_with_session.set(None)
        row: tuple[Any, ...] | None = read[1]
    else:
        with connection.cursor() as cursor:  # planned once a database session (prepared)
            prepared.execute(cursor, _USER, {"user": pk})
            row = cursor.fetchone()
    if row is None or row[_PK_COLUMN] is None:  # none: no such user (NULLs: none joined)
        return None
    columns = len(_USER_FIELDS)
    user = User.from_db(connection.alias, _USER_FIELDS, row[:columns])
    user._clientwindow_authorization = row[columns:]  # type: ignore[attr-defined]
    return user


def roles_context(request: HttpRequest) -> dict[str, Any]:
    return {"user_roles": roles_of(request.user)}


View = Callable[..., HttpResponseBase]


def role_required(view: View) -> View:
    """Logged in and holding at least one role; otherwise the no-role notice (403)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not roles_of(request.user):
            return render(request, "no_role.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


class HasRole(BasePermission):
    """The API's role_required: an account with none of the four roles sees nothing there."""

    message = "Your account has no role in ClientWindow yet."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(roles_of(request.user))
