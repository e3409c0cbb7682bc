"""The portal's sessions: Django's database sessions (django_session), read with one statement
written here. Every portal request reads its session first; the ORM's `get()` spent ~0.25 of its
0.42 ms building the statement and the model (docs/SCALE.md §7t). Saving, creating, cycling and
deleting sessions are Django's own (SESSION_ENGINE = "access.session_store")."""

from types import SimpleNamespace
from typing import Any

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Any:
        """What db.SessionStore's reads: the session's data unless it has expired or never
        existed (then it forgets the key, so that a new one is made), as an object with
        `session_data` as load() reads it."""
        table = self.model._meta.db_table
        using = router.db_for_read(self.model)
        with connections[using].cursor() as cursor:
            cursor.execute(
                f"SELECT session_data FROM {table}"  # noqa: S608 - Django's own table
                " WHERE session_key = %s AND expire_date > %s",
                [self.session_key, timezone.now()],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return SimpleNamespace(session_data=row[0])
