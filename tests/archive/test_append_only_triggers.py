"""The second layer behind privileges: every append-only table refuses UPDATE and DELETE once per
statement, before it reads a row, for whoever connects (archive/models.py append_only_triggers();
statement-level since issue 20). Privileges refuse the runtime role first
(tests/archive/test_privileges.py); these tests talk SQL as the owner role, which holds every
privilege on its tables, so only the trigger stands in the way.
"""

import psycopg
import pytest
from django.db import DatabaseError, connection, connections, transaction
from psycopg import sql

from archive import ledger
from archive.ledger import Fact
from archive.models import LedgerEntry
from archive.privileges import append_only_tables
from tests.conftest import superuser_connect

# pg_trigger.tgtype bits: BEFORE (2), DELETE (8), UPDATE (16); ROW (1) and INSERT (4) unset
BEFORE_UPDATE_OR_DELETE_STATEMENT = 2 | 8 | 16
# What a caller may put in pgtrigger.ignore short of a trigger's exact name: none of it passes.
NOT_A_NAME = ["", "*", "{}", "archive.Content:append_only", "pgtrigger_append_only"]


def append_only_triggers_in_the_database() -> dict[str, tuple[str, int, str]]:
    """table -> (trigger name, tgtype, tgenabled) of its `append_only` trigger. (The bridge's
    `append_only_raw` and `append_only_delete`, row triggers on tables that are not append-only,
    are named so that retention_dispose() passes them too; bridge/models.py.)"""
    found: dict[str, tuple[str, int, str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.tgname, t.tgtype, t.tgenabled FROM pg_trigger t"
            " JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE t.tgname ~ '^pgtrigger_append_only_[0-9a-f]{5}$' AND NOT t.tgisinternal"
        )
        for table, name, kind, enabled in cursor.fetchall():
            assert table not in found, f"{table} has two append_only triggers"
            found[table] = (name, kind, enabled)
    return found


def as_owner(conn: psycopg.Connection) -> psycopg.Connection:
    owner = connections["owner"].settings_dict["USER"]
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
    return conn


def changes(kind: str, where: str) -> dict[str, str]:
    """table -> an UPDATE (of its first column, to itself) or a DELETE with that WHERE."""
    with superuser_connect() as conn:
        first = dict(
            conn.execute(
                "SELECT DISTINCT ON (attrelid) attrelid::regclass::text, attname"
                " FROM pg_attribute WHERE attrelid = ANY(%s::regclass[]) AND attnum > 0"
                " AND NOT attisdropped ORDER BY attrelid, attnum",
                [append_only_tables()],
            ).fetchall()
        )
        if kind == "UPDATE":
            template = "UPDATE {table} SET {column} = {column} WHERE {where}"
        else:
            template = "DELETE FROM {table} WHERE {where}"
        return {
            table: sql.SQL(template)
            .format(
                table=sql.Identifier(table),
                column=sql.Identifier(first[table]),
                where=sql.SQL(where),  # type: ignore[arg-type]
            )
            .as_string(conn)
            for table in append_only_tables()
        }


@pytest.mark.django_db
def test_every_append_only_table_has_its_trigger_once_per_statement_before_it():
    found = append_only_triggers_in_the_database()
    assert set(found) == set(append_only_tables())
    for table, (_, kind, enabled) in found.items():
        assert (kind, enabled) == (BEFORE_UPDATE_OR_DELETE_STATEMENT, "O"), table


@pytest.mark.parametrize("kind", ["UPDATE", "DELETE"])
@pytest.mark.parametrize("ignore", NOT_A_NAME)
def test_it_refuses_the_owner_every_update_or_delete_even_of_no_row(committed, kind, ignore):
    """Refused before any row is read, whatever the statement matches: one matching no row is
    refused as well, as privileges refuse it to the runtime role. (The per-row trigger this
    replaced let a statement matching nothing through; no code path issues one: every foreign
    key of these tables is PROTECT, and their rows are only ever inserted.)"""
    (entry,) = ledger.append([Fact("test.fact", contents={"body": b"x"})])
    nothing, everything = changes(kind, "false"), changes(kind, "true")
    with superuser_connect() as conn:
        as_owner(conn)
        conn.execute("SELECT set_config('pgtrigger.ignore', %s, false)", [ignore])
        for table in append_only_tables():
            for statement in (nothing[table], everything[table]):
                with (
                    pytest.raises(
                        psycopg.errors.RaiseException,
                        match=f"{table} is append-only; {kind} refused",
                    ),
                    conn.transaction(),
                ):
                    conn.execute(statement)  # type: ignore[call-overload]
    assert bytes(LedgerEntry.objects.get(seq=entry.seq).contents.get().content) == b"x"


def test_it_lets_the_owner_through_only_the_trigger_it_names(committed):
    """What retention_dispose() does, as the owner: naming a table's trigger in pgtrigger.ignore
    passes that table's statements, and no other table's; ending the transaction ends it."""
    (entry,) = ledger.append([Fact("test.fact", contents={"body": b"x"})])
    names = {table: name for table, (name, _, _) in append_only_triggers_in_the_database().items()}
    with superuser_connect() as conn:
        as_owner(conn)
        with conn.transaction(force_rollback=True):
            conn.execute(
                "SELECT set_config('pgtrigger.ignore', %s, true)",
                ["{" + names["archive_content"] + "}"],  # a text[], as retention_dispose() sets
            )
            deleted = conn.execute("DELETE FROM archive_content WHERE seq = %s", [entry.seq])
            assert deleted.rowcount == 1
            with (
                pytest.raises(psycopg.errors.RaiseException, match="archive_ledgerentry"),
                conn.transaction(),
            ):
                conn.execute("DELETE FROM archive_ledgerentry WHERE seq = %s", [entry.seq])
        with (
            pytest.raises(psycopg.errors.RaiseException, match="archive_content"),
            conn.transaction(),
        ):
            conn.execute("DELETE FROM archive_content WHERE seq = %s", [entry.seq])
    assert LedgerEntry.objects.get().contents.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["UPDATE", "DELETE"])
def test_it_refuses_the_runtime_role_even_naming_every_append_only_trigger(kind):
    """pgtrigger.ignore as retention_dispose() sets it, set by the runtime role itself: the
    privileges refuse every statement, matching rows or not."""
    names = [name for name, _, _ in append_only_triggers_in_the_database().values()]
    ledger.append([Fact("test.fact", contents={"body": b"x"})])
    statements = [*changes(kind, "false").values(), *changes(kind, "true").values()]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('pgtrigger.ignore', %s, true)", ["{" + ",".join(names) + "}"]
        )
    for statement in statements:
        with (
            pytest.raises(DatabaseError, match="permission denied"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert bytes(LedgerEntry.objects.get().contents.get().content) == b"x"
