"""PostgreSQL, not convention, keeps the archive append-only for the runtime role."""

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from psycopg import sql

from archive import ledger
from archive.ledger import Fact
from archive.privileges import (
    RUNTIME_FUNCTIONS,
    append_only_tables,
    grant_runtime_privileges,
    read_only_tables,
    runtime_role,
)
from tests.conftest import superuser_connect

pytestmark = pytest.mark.django_db

TABLES = [
    "archive_ledgerentry",
    "archive_content",
    "archive_checkpoint",
    "archive_merklenode",
    "archive_verificationrun",
]
CHANGES = {
    "UPDATE": "UPDATE {table} SET {column} = {column}",
    "DELETE": "DELETE FROM {table}",
    "TRUNCATE": "TRUNCATE {table} CASCADE",
}
COLUMNS = {
    "archive_ledgerentry": "kind",
    "archive_content": "name",
    "archive_checkpoint": "note",
    "archive_merklenode": "hash",
    "archive_verificationrun": "problem",
}
IGNORE_VALUES = ["", "archive_ledgerentry:append_only", "*", "archive_ledgerentry:no_truncate"]


def test_it_runs_the_tests_as_a_separate_runtime_role():
    assert runtime_role() == connection.settings_dict["USER"]
    assert runtime_role() != connections["owner"].settings_dict["USER"]


def test_it_treats_every_archive_record_table_as_append_only():
    assert set(TABLES) <= set(append_only_tables())


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("ignore", IGNORE_VALUES)
def test_it_refuses_the_runtime_role_any_change(table, change, ignore):
    ledger.append([Fact("test.fact", contents={"body": b"x"})])
    statement = CHANGES[change].format(table=table, column=COLUMNS[table])
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [ignore])
        cursor.execute(statement)


def test_it_lets_the_runtime_role_read_and_append():
    ledger.append([Fact("test.fact")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM archive_ledgerentry")
        assert cursor.fetchone() == (1,)


def test_it_refuses_the_runtime_role_to_create_tables():
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("CREATE TABLE sneaky (id int)")


@pytest.mark.parametrize("change", ["UPDATE", "DELETE", "TRUNCATE"])
def test_it_refuses_even_the_owner_through_triggers(change):
    """The owner holds every privilege on its tables; the triggers are the second layer."""
    statement = CHANGES[change].format(table="archive_ledgerentry", column="kind")
    with superuser_connect() as conn:
        conn.execute(
            "INSERT INTO archive_verificationrun (started_at, finished_at, intact, entries,"
            " checkpoints, contents, problem, trigger)"
            " VALUES (now(), now(), true, 0, 0, 0, '', 't')"
        )
        owner = connections["owner"].settings_dict["USER"]
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
        target = statement.replace("archive_ledgerentry", "archive_verificationrun").replace(
            "kind", "problem"
        )
        try:
            with pytest.raises(psycopg.errors.RaiseException, match="archive_verificationrun"):
                conn.execute(target)
        finally:
            conn.execute("RESET ROLE")
            conn.execute("SET session_replication_role = replica")
            conn.execute("DELETE FROM archive_verificationrun")


def auditor_connection():
    conn = superuser_connect()
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(settings.DATABASE_AUDITOR_ROLE)))
    return conn


def test_it_lets_the_auditor_role_read_the_evidence():
    with auditor_connection() as conn:
        for table in [*TABLES, "archive_chainhead"]:
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO archive_checkpoint VALUES (1, '', '', now())",
        "UPDATE archive_chainhead SET size = 5",
        "SELECT count(*) FROM auth_user",
    ],
)
def test_it_lets_the_auditor_role_do_nothing_else(statement):
    with auditor_connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


READ_ONLY = {  # registries retention's owner-run SQL trusts (retention/migrations/0007)
    "retention_disposablekind": "INSERT INTO retention_disposablekind VALUES ('legal_hold', 'x')",
    "retention_blanker": "INSERT INTO retention_blanker VALUES ('pg_terminate_backend', 'x')",
}


def test_it_treats_the_registries_the_owners_sql_trusts_as_read_only():
    assert set(READ_ONLY) <= set(read_only_tables())


@pytest.mark.parametrize("table", READ_ONLY)
@pytest.mark.parametrize(
    "change", ["INSERT", "UPDATE {table} SET app = app", "DELETE FROM {table}"]
)
def test_it_lets_the_runtime_role_only_read_a_read_only_table(table, change):
    statement = READ_ONLY[table] if change == "INSERT" else change.format(table=table)
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)


@pytest.mark.django_db(databases=["default", "owner"])
def test_it_grants_after_a_reverse_migrate_that_dropped_a_table_or_function():
    """`migrate archive 0006` drops archive_verifiedcheckpoint; the post_migrate grants that
    follow must grant on what is left, not fail on what is gone (and take nothing away)."""
    gone_table, gone_function = "archive_verifiedcheckpoint", "retention_dispose(bigint[], bigint)"
    assert gone_table in append_only_tables()
    assert gone_function in RUNTIME_FUNCTIONS
    owner = connections["owner"]
    with pytest.raises(_RolledBack), transaction.atomic(using="owner"):
        with owner.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {gone_table} RENAME TO gone_for_the_test")
            cursor.execute(f"ALTER FUNCTION {gone_function} RENAME TO gone_for_the_test")
        grant_runtime_privileges(using="owner")
        with owner.cursor() as cursor:
            cursor.execute(
                "SELECT has_table_privilege(%s, 'archive_ledgerentry', 'UPDATE'),"
                " has_table_privilege(%s, 'archive_ledgerentry', 'INSERT')",
                [runtime_role(), runtime_role()],
            )
            assert cursor.fetchone() == (False, True)
        raise _RolledBack


class _RolledBack(Exception):
    pass
