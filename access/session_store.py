"""The portal's sessions: Django's database sessions (django_session), read with one statement
written here, which also reads the session's user. Every portal request reads its session first;
the ORM's `get()` spent ~0.25 of its 0.42 ms building the statement and the model (docs/SCALE.md
§7t). Then it read the session's user with their roles (access.backends), a second round trip.
Here the user the session named when this process last read or saved it is read in the same
statement (`_user_of`), and `access.roles.user_with_authorization` takes that row if the session
still names that user, as it always does: signing in cycles the key, signing out flushes it. If
it names another, or this process has not seen the session yet, the user is read on their own,
as before. Either way the user's row is read in the request that uses it. Saving, creating,
cycling and deleting sessions are Django's own (SESSION_ENGINE = "access.session_store")."""

from types import SimpleNamespace
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends import db
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.utils import timezone

from access import roles
from archive import prepared

_TABLE = db.SessionStore.get_model_class()._meta.db_table
_SESSION = (
    f"SELECT session_data FROM {_TABLE}"  # noqa: S608 - Django's own table
    " WHERE session_key = %s AND expire_date > %s"
)
_COLUMNS, _JOIN = roles.USER_JOINED
_SESSION_WITH_USER = (
    f"SELECT s.session_data, {_COLUMNS} FROM {_TABLE} s {_JOIN}"  # noqa: S608 - ours
    " WHERE s.session_key = %(key)s AND s.expire_date > %(now)s"
)
# The user each session named when this process last read or saved it, by the hash of its key
# (not the key: a session's key is its bearer's credential). Only a guess: a collision or a
# stale entry costs the user's own statement, never another user. Emptied when full.
_user_of: dict[int, Any] = {}
_REMEMBERED = 10_000


def _remember(session_key: str | None, data: dict[str, Any]) -> None:
    if session_key is None:
        return
    if len(_user_of) >= _REMEMBERED:
        _user_of.clear()
    try:
        user_id = User._meta.pk.to_python(data.get(SESSION_KEY))
    except ValidationError:  # not a user's id: nobody to read with the session (Django's says)
        user_id = None
    if user_id is None:
        _user_of.pop(hash(session_key), None)
    else:
        _user_of[hash(session_key)] = user_id


class SessionStore(db.SessionStore):
    def load(self) -> dict[str, Any]:
        data: dict[str, Any] = super().load()
        _remember(self._session_key, data)
        return data

    def create_model_instance(self, data: dict[str, Any]) -> Any:
        _remember(self._session_key, data)  # saved: signing in names the new key's user
        return super().create_model_instance(data)

    def _get_session_from_db(self) -> Any:
        """What db.SessionStore's reads: the session's data unless it has expired or never
        existed (then it forgets the key, so that a new one is made), as an object with
        `session_data` as load() reads it; with the user it named last time, for
        `roles.user_with_authorization`, in the same statement."""
        using = router.db_for_read(self.model)
        user_id = _user_of.get(hash(self.session_key)) if self.session_key else None
        if user_id is not None and router.db_for_read(User) != using:
            user_id = None
        with connections[using].cursor() as cursor:
            if user_id is None:
                cursor.execute(_SESSION, [self.session_key, timezone.now()])
            else:  # planned once a database session (archive.prepared): three sub-selects
                params = {"key": self.session_key, "now": timezone.now(), "user": user_id}
                prepared.execute(cursor, _SESSION_WITH_USER, params)
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        if user_id is not None:
            roles.read_with_session(user_id, tuple(row[1:]))
        return SimpleNamespace(session_data=row[0])
