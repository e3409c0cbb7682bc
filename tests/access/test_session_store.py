"""access.session_store reads a session with its own statement; whatever is stored, it loads
what Django's database store loads, and forgets a key Django's forgets."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.utils import timezone

from access.session_store import SessionStore


def test_it_is_the_portals_session_engine() -> None:
    assert settings.SESSION_ENGINE == "access.session_store"


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["live", "expired", "unknown", "tampered", "empty key"])
def test_it_loads_what_djangos_database_store_loads(case: str) -> None:
    stored = db.SessionStore()
    stored["_auth_user_id"], stored["note"] = "7", "a “quoted” ünïcode value"
    stored.create()
    key = stored.session_key
    if case == "expired":
        Session.objects.filter(session_key=key).update(
            expire_date=timezone.now() - timedelta(seconds=1)
        )
    if case == "unknown":
        key = "x" * 32
    if case == "tampered":
        Session.objects.filter(session_key=key).update(session_data="not:signed:data")
    if case == "empty key":
        key = None
    ours, django = SessionStore(key), db.SessionStore(key)
    assert ours.load() == django.load()
    assert ours.session_key == django.session_key
    if case == "live":
        assert ours.load()["note"] == "a “quoted” ünïcode value"
    else:
        assert ours.load() == {}
