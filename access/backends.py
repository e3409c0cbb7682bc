"""The portal's password backend: Django's ModelBackend, reading the signed-in user with their
roles and permissions in one statement.

Every portal request loads its user from the session (`ModelBackend.get_user`: one statement)
and then asks for the user's roles and permissions (`access.roles.roles_of`: another). Here the
user's row comes with them, so a request sends one statement for both; what it reads, and when,
is unchanged: the user, their groups and both kinds of permission, fresh at every request. An
account that may not sign in (inactive) is refused as ModelBackend refuses it.

clientwindow/sso/backends.py's LocalLoginPolicy (allauth's backend) does the same through
`OneStatementUser`, so a single sign-on session is read the same way.
"""

from typing import Any

from django.contrib.auth import backends
from django.contrib.auth.models import User

from access.roles import user_with_authorization


class OneStatementUser:
    """A backend's `get_user` in one statement (`access.roles.user_with_authorization`)."""

    def get_user(self, user_id: Any) -> User | None:
        user = user_with_authorization(user_id)
        if user is None or not self.user_can_authenticate(user):  # type: ignore[attr-defined]
            return None
        return user


class ModelBackend(OneStatementUser, backends.ModelBackend):
    pass
