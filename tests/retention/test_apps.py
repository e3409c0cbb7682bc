"""Retention registers what it owns with the floors below (retention/apps.py)."""

import pytest
from django.db import connection

from archive.privileges import RUNTIME_FUNCTIONS
from messaging import hooks
from retention import assign

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
