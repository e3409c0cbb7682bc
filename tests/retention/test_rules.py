"""PostgreSQL keeps the retention rules (retention/migrations/0002_rules.py), not the code that
usually respects them: every test here talks SQL as the runtime role, the one the portal uses.

Tests that need a record past retention use `committed`: PostgreSQL's now() is frozen for a
transaction, so inside a `db` test nothing sealed in the test has ever expired.
"""

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from psycopg import sql

from archive import ledger
from archive.envelope import Fact
from archive.models import LedgerEntry
from archive.verify import verify_ledger
from messaging.models import Delivery, Message
from retention.models import RetentionPolicy, RetentionRecord
from tests.conftest import superuser_connect
from tests.retention.conftest import (
    Desks,
    content_names,
    default_policy,
    dispose,
    expire,
    extend,
    hold,
    new_disposition,
    record,
    seal,
    text,
)

CLIENT = "447700900555"
SECRET = "move the money before the audit"


def sealed(wamid: str = "wamid.rule", body: str = SECRET) -> Message:
    seal(text(CLIENT, "Rule Client", wamid, body))
    return Message.objects.get(wamid=wamid)


def run(statement: str, params: list[Any] | None = None) -> None:
    """One statement as the runtime role, in a savepoint so a refusal leaves the test usable."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


def set_ignore(value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('pgtrigger.ignore', %s, false)", [value])


# --- Content: privileges are the boundary -------------------------------------------------

CONTENT_CHANGES = [
    "UPDATE archive_content SET content = ''::bytea WHERE seq = {seq}",
    "DELETE FROM archive_content WHERE seq = {seq}",
    "UPDATE messaging_message SET text = '' WHERE seq = {seq}",
    "UPDATE messaging_message SET payload = '{{}}'::jsonb WHERE seq = {seq}",
    "DELETE FROM messaging_message WHERE seq = {seq}",
    "UPDATE messaging_delivery SET body = ''::bytea",
    "UPDATE messaging_participantprofile SET name = ''",
    "DELETE FROM messaging_delivery",
    "TRUNCATE messaging_message CASCADE",
]
# What anyone may put in pgtrigger.ignore: none of it switches a privilege off.
IGNORES = ["", "*", "messaging_message:append_only,messaging_delivery:append_only"]


@pytest.mark.parametrize("ignore", IGNORES)
@pytest.mark.parametrize("statement", CONTENT_CHANGES)
def test_it_refuses_the_runtime_role_any_change_to_content(
    db: None, desks: Desks, statement: str, ignore: str
) -> None:
    message = sealed()
    set_ignore(ignore)
    with pytest.raises(DatabaseError, match="permission denied"):
        run(statement.format(seq=message.entry_id))
    message.refresh_from_db()
    assert message.text == SECRET
    assert SECRET.encode() in bytes(Delivery.objects.get().body)
    assert content_names(message.entry_id) == {"wamid", "item", "text"}


# --- Records: never deleted, never shortened, disposed of only by the function ------------

RECORD_CHANGES = [
    "DELETE FROM retention_record WHERE seq = {seq}",
    "TRUNCATE retention_record",
    "UPDATE retention_record SET disposed_at = now() WHERE seq = {seq}",
    "UPDATE retention_record SET disposition_id = {disposition} WHERE seq = {seq}",
    "UPDATE retention_record SET kind = 'participant' WHERE seq = {seq}",
    "UPDATE retention_record SET sealed_at = sealed_at + interval '1 year' WHERE seq = {seq}",
]


@pytest.mark.parametrize("statement", RECORD_CHANGES)
def test_it_refuses_the_runtime_role_anything_but_lengthening_a_record(
    db: None, desks: Desks, statement: str
) -> None:
    message = sealed()
    before = record(message.entry_id)
    change = statement.format(seq=message.entry_id, disposition=new_disposition().pk)
    with pytest.raises(DatabaseError, match="permission denied"):
        run(change)
    after = record(message.entry_id)
    assert (after.disposed_at, after.kind, after.sealed_at) == (None, "message", before.sealed_at)


@pytest.mark.parametrize("ignore", ["", "*", "retention_record:retention_record_guard"])
def test_it_refuses_to_shorten_a_records_retention_whatever_is_ignored(
    db: None, desks: Desks, ignore: str
) -> None:
    message = sealed()
    before = record(message.entry_id).retain_until
    set_ignore(ignore)
    with pytest.raises(IntegrityError, match="can be kept longer, never shorter"):
        run(
            "UPDATE retention_record SET retain_until = retain_until - interval '1 second'"
            " WHERE seq = %s",
            [message.entry_id],
        )
    assert record(message.entry_id).retain_until == before


def test_it_lets_the_runtime_role_lengthen_a_records_retention(db: None, desks: Desks) -> None:
    message = sealed()
    before = record(message.entry_id).retain_until
    run(
        "UPDATE retention_record SET retain_until = retain_until + interval '1 year'"
        " WHERE seq = %s",
        [message.entry_id],
    )
    assert record(message.entry_id).retain_until == before + timedelta(days=365)


def unrecorded_entry() -> LedgerEntry:
    """A sealed entry of a captured kind with no retention record yet (sealed outside capture)."""
    (entry,) = ledger.append([Fact("message", {}, {"body": b"x"})])
    return entry


INSERT = (
    "INSERT INTO retention_record (seq, kind, policy_id, sealed_at, retain_until, disposed_at)"
    " VALUES (%s, 'message', %s, %s, %s, %s)"
)


@pytest.mark.parametrize(
    ("sealed_offset", "kept_days", "disposed", "refusal"),
    [
        (0, -1, False, "kept less than its policy requires"),
        (-1, 0, False, "kept less than its policy requires"),  # sealed_at is not the entry's
        (0, 0, True, "cannot be recorded as disposed of"),
    ],
)
def test_it_refuses_a_record_shorter_than_its_policy_or_born_disposed(
    db: None, sealed_offset: int, kept_days: int, disposed: bool, refusal: str
) -> None:
    entry, policy = unrecorded_entry(), default_policy()
    sealed_at = entry.sealed_at + timedelta(seconds=sealed_offset)
    retain_until = entry.sealed_at + timedelta(days=policy.days + kept_days)
    disposed_at = entry.sealed_at if disposed else None
    with pytest.raises(IntegrityError, match=refusal):
        run(INSERT, [entry.seq, policy.pk, sealed_at, retain_until, disposed_at])
    assert not RetentionRecord.objects.filter(entry_id=entry.seq).exists()


def test_it_accepts_a_record_kept_as_long_as_its_policy(db: None) -> None:
    entry, policy = unrecorded_entry(), default_policy()
    until = entry.sealed_at + timedelta(days=policy.days)
    run(INSERT, [entry.seq, policy.pk, entry.sealed_at, until, None])
    assert record(entry.seq).retain_until == until


# --- retention_dispose(): refused as a whole, or done completely --------------------------


def test_it_refuses_to_dispose_of_a_record_inside_retention(db: None, desks: Desks) -> None:
    message = sealed()
    refusal = rf"seq {message.entry_id} is inside retention until"
    with pytest.raises(IntegrityError, match=refusal), transaction.atomic():
        dispose([message.entry_id])
    assert content_names(message.entry_id) == {"wamid", "item", "text"}
    assert record(message.entry_id).disposed_at is None


def test_it_refuses_to_dispose_of_a_seq_without_a_record(db: None) -> None:
    entry = unrecorded_entry()
    refusal = rf"seq {entry.seq} has no retention record"
    with pytest.raises(IntegrityError, match=refusal), transaction.atomic():
        dispose([entry.seq])
    assert content_names(entry.seq) == {"body"}


def test_it_refuses_the_whole_call_when_one_record_is_inside_retention(
    committed: None, desks: Desks
) -> None:
    due, kept = sealed("wamid.due", "due text"), sealed("wamid.kept", "kept text")
    expire([due.entry_id])
    extend([kept.entry_id])
    with pytest.raises(IntegrityError, match=rf"seq {kept.entry_id} is inside retention.*nothing"):
        dispose([due.entry_id, kept.entry_id])
    assert Message.objects.get(pk=due.pk).text == "due text"
    assert content_names(due.entry_id) == {"wamid", "item", "text"}
    assert record(due.entry_id).disposed_at is None


def test_it_refuses_to_dispose_of_a_held_record_naming_the_matter(
    committed: None, desks: Desks
) -> None:
    message = sealed()
    hold("Smith v Bank", conversations=[message.conversation_id])
    expire([message.entry_id])
    with pytest.raises(IntegrityError, match=r"under the legal hold 'Smith v Bank'; nothing"):
        dispose([message.entry_id])
    assert Message.objects.get(pk=message.pk).text == SECRET


def test_it_refuses_to_dispose_of_a_record_twice(committed: None, desks: Desks) -> None:
    message = sealed()
    expire([message.entry_id])
    dispose([message.entry_id])
    with pytest.raises(IntegrityError, match="has already been disposed of"):
        dispose([message.entry_id])


def test_it_disposes_of_an_eligible_record_leaving_its_ledger_entry(
    committed: None, desks: Desks
) -> None:
    message, other = sealed(), sealed("wamid.other", "other text")
    expire([message.entry_id])
    disposition = new_disposition()
    done = dispose([message.entry_id], disposition)
    assert done == [(message.entry_id, "message", record(message.entry_id).policy_id)]
    assert content_names(message.entry_id) == set()
    gone = Message.objects.get(pk=message.pk)
    assert (gone.text, gone.payload, gone.wamid) == ("", {}, f"disposed:{message.entry_id}")
    assert LedgerEntry.objects.filter(seq=message.entry_id).exists()
    kept = record(message.entry_id)
    assert kept.disposed_at is not None and kept.disposition_id == disposition.pk
    assert content_names(other.entry_id) == {"wamid", "item", "text"}
    assert verify_ledger().intact


def test_it_refuses_other_roles_the_function(db: None) -> None:
    with superuser_connect() as conn:
        role = sql.Identifier(settings.DATABASE_AUDITOR_ROLE)
        conn.execute(sql.SQL("SET ROLE {}").format(role))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="retention_dispose"):
            conn.execute("SELECT * FROM retention_dispose('{}'::bigint[], 0)")


# --- Who else may mark a record disposed of -----------------------------------------------


def test_it_refuses_even_a_superuser_marking_a_record_disposed_with_triggers_on(
    committed: None, desks: Desks
) -> None:
    message = sealed()
    with (
        superuser_connect() as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="only retention_dispose"),
    ):
        conn.execute(
            "UPDATE retention_record SET disposed_at = now() WHERE seq = %s", [message.entry_id]
        )


def test_it_lets_the_owner_role_mark_a_record_disposed_without_the_function(
    committed: None, desks: Desks
) -> None:
    """Documented, not wanted: the guard trusts the table's owner, which is what lets
    `retention_dispose()` work, so the owner can mark a record disposed of without deleting
    anything, or before it expires. The owner role is for migrations only (docs/RETENTION.md,
    Limits): the application must never connect as it."""
    message = sealed()
    owner = connections["owner"].settings_dict["USER"]
    with superuser_connect() as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
        conn.execute(
            "UPDATE retention_record SET disposed_at = now() WHERE seq = %s", [message.entry_id]
        )
    assert record(message.entry_id).disposed_at is not None
    assert content_names(message.entry_id) == {"wamid", "item", "text"}


def test_it_refuses_a_retention_record_for_a_legal_holds_sealed_entry(
    committed: None, desks: Desks
) -> None:
    message = sealed()
    hold("Audit trail", conversations=[message.conversation_id])
    entry = LedgerEntry.objects.get(kind="legal_hold.created")
    zero = RetentionPolicy.objects.create(name="Nothing", days=0, rule="none")
    try:
        run(INSERT, [entry.seq, zero.pk, entry.sealed_at, entry.sealed_at, None])
        dispose([entry.seq])
    except DatabaseError:
        pass
    assert content_names(entry.seq) >= {"matter", "reason", "scope"}
