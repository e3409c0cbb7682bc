"""What retention's SQL trusts is registered data (retention/migrations/0007_registries.py):
a kind is disposable only while registered, and retention_dispose() calls only a registered
blanker that is a real function of its owner's. Registering is the owner's (a migration's)."""

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from django.db import IntegrityError, ProgrammingError, connection, connections, transaction
from django.db.migrations.loader import MigrationLoader
from psycopg import sql

from archive import ledger
from archive.envelope import Fact
from archive.models import LedgerEntry
from messaging.models import Message
from retention.assign import BRIDGE_KINDS, IMPORT_KINDS, KINDS
from retention.models import DisposableKind
from tests.conftest import superuser_connect
from tests.retention.conftest import (
    Desks,
    content_names,
    default_policy,
    dispose,
    expire,
    record,
    seal,
    text,
)

INSERT = (
    "INSERT INTO retention_record (seq, kind, policy_id, sealed_at, retain_until)"
    " VALUES (%s, %s, %s, %s, %s)"
)


@pytest.fixture
def owner() -> Iterator[psycopg.Connection]:
    """The owner role, as a migration registers; what a test registers is removed after."""
    role = sql.Identifier(connections["owner"].settings_dict["USER"])
    with superuser_connect() as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(role))
        try:
            yield conn
        finally:
            conn.execute("DELETE FROM retention_blanker WHERE app = 'test'")
            conn.execute("DELETE FROM retention_disposablekind WHERE app = 'test'")
            conn.execute("RESET ROLE")
            conn.execute("DROP FUNCTION IF EXISTS rogue_blank(bigint[])")


def new_record(kind: str) -> LedgerEntry:
    """A sealed entry of `kind`, given a record under the default policy as the runtime role."""
    (entry,) = ledger.append([Fact(kind, {}, {"body": b"x"})])
    policy = default_policy()
    until = entry.sealed_at + timedelta(days=policy.days)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(INSERT, [entry.seq, kind, policy.pk, entry.sealed_at, until])
    return entry


def expired_message() -> Message:
    seal(text("447700900123", "Registry Client", "wamid.registry", "registered secret"))
    message = Message.objects.get(wamid="wamid.registry")
    expire([message.entry_id])
    return message


def test_it_registers_every_kind_retention_assigns(db: None) -> None:
    registered = set(DisposableKind.objects.values_list("kind", flat=True))
    assert registered == {*KINDS.values(), *IMPORT_KINDS.values(), *BRIDGE_KINDS}


def test_it_refuses_a_record_for_an_audit_kind(db: None) -> None:
    with pytest.raises(IntegrityError, match="not a captured record"):
        new_record("legal_hold.created")


def test_it_makes_a_kind_disposable_while_the_owner_registers_it(
    committed: None, owner: psycopg.Connection
) -> None:
    owner.execute("INSERT INTO retention_disposablekind (kind, app) VALUES ('test.note', 'test')")
    entry = new_record("test.note")
    expire([entry.seq])
    assert [(seq, kind) for seq, kind, _ in dispose([entry.seq])] == [(entry.seq, "test.note")]
    assert content_names(entry.seq) == set()
    owner.execute("DELETE FROM retention_disposablekind WHERE kind = 'test.note'")
    with pytest.raises(IntegrityError, match="not a captured record"):
        new_record("test.note")


def test_it_refuses_to_dispose_when_a_blanker_does_not_exist(
    committed: None, desks: Desks, owner: psycopg.Connection
) -> None:
    message = expired_message()
    owner.execute("INSERT INTO retention_blanker (function, app) VALUES ('no_such_blank', 'test')")
    with pytest.raises(ProgrammingError, match=r"no_such_blank.*nothing was"):
        dispose([message.entry_id])
    assert record(message.entry_id).disposed_at is None
    assert content_names(message.entry_id) == {"wamid", "item", "text"}


def test_it_refuses_to_call_a_blanker_its_owner_does_not_own(
    committed: None, desks: Desks, owner: psycopg.Connection
) -> None:
    message = expired_message()
    runtime = sql.Identifier(connection.settings_dict["USER"])
    with superuser_connect() as conn:
        conn.execute(
            "CREATE FUNCTION rogue_blank(p_seqs bigint[]) RETURNS void LANGUAGE sql"
            " AS 'UPDATE retention_retentionpolicy SET days = 0'"
        )
        conn.execute(sql.SQL("ALTER FUNCTION rogue_blank(bigint[]) OWNER TO {}").format(runtime))
    owner.execute("INSERT INTO retention_blanker (function, app) VALUES ('rogue_blank', 'test')")
    with pytest.raises(ProgrammingError, match=r"rogue_blank.*not owned"):
        dispose([message.entry_id])
    assert record(message.entry_id).disposed_at is None
    assert default_policy().days > 0


def test_it_refuses_a_blanker_that_is_not_a_plain_name(db: None, owner: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match="blanker_is_a_name"):
        owner.execute(
            "INSERT INTO retention_blanker (function, app) VALUES ('pg_sleep(1); --', 'test')"
        )


def test_it_replaces_what_bridge_0002_wrote_on_every_database(db: None) -> None:
    """bridge 0002 spliced its UPDATEs into retention_dispose(); 0007 must always run after it."""
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    parents = {node.key for node in graph.node_map["retention", "0007_registries"].parents}
    assert ("bridge", "0002_retention") in parents
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'retention_dispose'")
        (source,) = cursor.fetchone()
    assert "retention_blanker" in source and "bridge_" not in source
