"""Only Administrators reach the Django admin, whatever their is_staff flag says; and there they
hand out roles, never more than they hold.

A non-superuser administrator does not see `is_superuser` or the raw permission list: they give
a user some of the four roles, and the few permissions granted one user at a time
(roles.GRANTABLE). Groups' permissions and a superuser's account are the superuser's own
business; superusers hold no API tokens. Nor does an administrator set another administrator's
password: that would let one person act as two (retention/disposition.py's approval rule).

Changing a user or a group asks for a recent sign-in or re-authentication first
(access/sessions.py), and django-auditlog records the change (clientwindow/account_events.py).
Second factors are listed for superusers without their secrets, to remove a lost one.
"""

from typing import Any

from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from rest_framework.authtoken.models import TokenProxy

from access.roles import ADMINISTRATOR, GRANTABLE, ROLES, roles_of
from access.sessions import recent_authentication_required
from clientwindow import tokens
from clientwindow.models import ApiToken

SUPERUSER_FIELDS = ("is_superuser",)
# Adding or changing a user or a group, and setting a password (GET too: the form is the change).
confirmed = method_decorator(recent_authentication_required)


def _administrators_only(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and ADMINISTRATOR in roles_of(user))


admin.site.has_permission = _administrators_only  # type: ignore[method-assign]


def grantable_permissions() -> QuerySet[Permission]:
    wanted = Q(pk__in=[])
    for name in GRANTABLE:
        app_label, codename = name.split(".")
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    return Permission.objects.filter(wanted).select_related("content_type")


def _superuser(request: HttpRequest) -> bool:
    return bool(request.user.is_superuser)


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):  # type: ignore[type-arg]
    @confirmed
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    @confirmed
    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        user = self.get_object(request, id)
        if (
            user is not None
            and user.pk != request.user.pk
            and ADMINISTRATOR in roles_of(user)
            and not _superuser(request)
        ):
            raise PermissionDenied(
                "Another administrator's password is theirs (or a superuser's) to set."
            )
        return super().user_change_password(request, id, form_url)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if _superuser(request):
            return fieldsets
        # The form is built from these fields: a posted is_superuser is ignored, not saved.
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f not in SUPERUSER_FIELDS]})
            for name, opts in fieldsets
        ]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "groups":
            kwargs["queryset"] = Group.objects.filter(name__in=ROLES)
        elif db_field.name == "user_permissions" and not _superuser(request):
            kwargs["queryset"] = grantable_permissions()
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A superuser's account (its password, groups, activity) is not another's to take over;
        # the password view asks this too.
        if obj is not None and obj.is_superuser and not _superuser(request):
            return False
        return super().has_change_permission(request, obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The choices offered are limited; whatever else the user holds stays as it was.
        user = form.instance
        kept_groups = list(user.groups.exclude(name__in=ROLES)) if change else []
        kept_permissions = []
        if change and not _superuser(request):
            offered = grantable_permissions().values("pk")
            kept_permissions = list(user.user_permissions.exclude(pk__in=offered))
        super().save_related(request, form, formsets, change)
        user.groups.add(*kept_groups)
        user.user_permissions.add(*kept_permissions)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(auth_admin.GroupAdmin):
    """The roles' permissions are access/roles.py's (re-applied by migrations): only a
    superuser changes a group, whatever permissions an administrator has been given."""

    @confirmed
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _superuser(request)


admin.site.unregister(Authenticator)


@admin.register(Authenticator)
class AuthenticatorAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Second factors, for a superuser to remove a lost one; never their secrets (`data`)."""

    fields = list_display = ("user", "type", "created_at", "last_used_at")
    readonly_fields = fields
    list_filter = ("type",)
    search_fields = ("user__username",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# DRF's plaintext tokens are gone (clientwindow/migrations/0009_api_tokens.py): no page for them.
admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Every non-superuser's API tokens, read-only, and an action to revoke them. Nothing here
    shows a secret (only its digest is kept, and not shown); owners issue tokens in the portal
    (clientwindow/token_views.py), after confirming who they are."""

    fields = list_display = (
        "prefix",
        "name",
        "owner",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    )
    readonly_fields = fields
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "expires_at")
    search_fields = ("prefix", "name", "owner__username")
    actions = ["revoke_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        tokens = super().get_queryset(request).select_related("owner", "revoked_by")
        return tokens.exclude(owner__is_superuser=True)

    # Reaching the admin at all takes the Administrator role (_administrators_only).
    def has_module_permission(self, request: HttpRequest) -> bool:
        return _administrators_only(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _administrators_only(request)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return _administrators_only(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a revoked token stays, with who revoked it and when

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(tokens.revoke(request, token) for token in queryset)
        self.message_user(request, f"{revoked} token(s) revoked.")
