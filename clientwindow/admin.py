"""Only Administrators reach the Django admin, whatever their is_staff flag says."""

from django.contrib import admin
from django.http import HttpRequest

from clientwindow.roles import ADMINISTRATOR, roles_of


def _administrators_only(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and ADMINISTRATOR in roles_of(user))


admin.site.has_permission = _administrators_only  # type: ignore[method-assign]
