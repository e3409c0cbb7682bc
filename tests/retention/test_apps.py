"""Retention registers what it owns with the floors below (retention/apps.py)."""

import pytest
from django.db import connection

from archive.privileges import RUNTIME_FUNCTIONS
from messaging import hooks
from retention import assign, search_filter
from review import search

pytestmark = pytest.mark.django_db


def test_it_hooks_into_sealing():
    assert assign.sealed in hooks.registered("sealed")
    assert assign.attached in hooks.registered("attached")


def test_it_lets_the_runtime_role_dispose():
    assert RUNTIME_FUNCTIONS == ["retention_dispose(bigint[], bigint)"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_function_privilege(current_user, %s, 'EXECUTE')", RUNTIME_FUNCTIONS
        )
        assert cursor.fetchone() == (True,)


def test_it_adds_the_legal_hold_filter_to_search():
    assert search.FILTERS["hold"] is search_filter.HOLD
    assert "hold" in search.parameter_names()
    assert search_filter.hold_filter_registered() == []


def test_it_fails_a_system_check_without_its_search_filter(monkeypatch):
    monkeypatch.setattr(search, "FILTERS", {})
    assert [e.id for e in search_filter.hold_filter_registered()] == ["retention.E001"]
