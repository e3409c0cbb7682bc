"""The test database as tests/conftest.py makes it: its tables' statistics are what a test makes
them, never what autovacuum sampled mid-run (the plan-reading tests depend on it)."""

import pytest
from django.db import connection


@pytest.mark.django_db
def test_autovacuum_leaves_the_test_databases_tables_alone() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            " AND NOT ('autovacuum_enabled=off' = ANY (coalesce(c.reloptions, '{}')))"
        )
        left = [name for (name,) in cursor.fetchall()]
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname = 'messaging_message'")
        assert cursor.fetchone() == (1,)
    assert left == []
