"""retention_record's guard holds for every statement shape (retention/migrations/0010): a
multi-row INSERT, a pipelined batch, a COPY or an INSERT … SELECT with one bad record anywhere is
refused as a whole, and so is a multi-row UPDATE with one bad change, by the runtime role and by
the table's owner alike (the owner's only privilege is setting the disposition marks)."""

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from archive import ledger
from archive.envelope import Fact
from archive.models import LedgerEntry
from retention.models import RetentionRecord
from tests.conftest import superuser_connect
from tests.retention.conftest import default_policy, expire, new_disposition

SHAPES = ("values", "rows", "copy", "select")
COLUMNS = "retention_record (seq, kind, policy_id, sealed_at, retain_until, disposed_at)"
REFUSALS = {
    "disposed": "cannot be recorded as disposed of",
    "kind": "is not a captured record",
    "audit": "is not a captured record",
    "short": "kept less than its policy requires",
    "sealed": "kept less than its policy requires",
}
Row = tuple[int, str, int, Any, Any, Any]


def entries(count: int, kind: str = "message") -> list[LedgerEntry]:
    return ledger.append([Fact(kind, {}, {"body": b"x"})] * count)


def honest(found: list[LedgerEntry]) -> list[Row]:
    policy = default_policy()
    keep = timedelta(days=policy.days)
    return [(e.seq, e.kind, policy.pk, e.sealed_at, e.sealed_at + keep, None) for e in found]


def damaged(rows: list[Row], at: int, defect: str) -> list[Row]:
    out = list(rows)
    seq, kind, policy, sealed_at, until, disposed = out[at]
    if defect == "disposed":
        out[at] = (seq, kind, policy, sealed_at, until, sealed_at)
    elif defect == "kind":
        out[at] = (seq, "participant", policy, sealed_at, until, disposed)
    elif defect == "audit":  # an audit entry, recorded under its own (never disposable) kind
        (entry,) = ledger.append([Fact("legal_hold.created")])
        out[at] = (entry.seq, entry.kind, policy, entry.sealed_at, until, disposed)
    elif defect == "short":
        out[at] = (seq, kind, policy, sealed_at, until - timedelta(seconds=1), disposed)
    else:  # not its entry's seal time, however long it is kept from it
        moved = sealed_at - timedelta(seconds=1)
        out[at] = (seq, kind, policy, moved, until, disposed)
    return out


def insert(rows: list[Row], shape: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor
        if shape == "values":
            marks = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
            raw.execute(f"INSERT INTO {COLUMNS} VALUES {marks}", [v for r in rows for v in r])
        elif shape == "rows":
            raw.executemany(f"INSERT INTO {COLUMNS} VALUES (%s, %s, %s, %s, %s, %s)", rows)
        elif shape == "copy":
            with raw.copy(f"COPY {COLUMNS} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            raw.execute(
                f"INSERT INTO {COLUMNS} SELECT * FROM unnest(%s::bigint[], %s::text[],"
                " %s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[])",
                [list(column) for column in zip(*rows, strict=True)],
            )


@pytest.mark.parametrize("shape", SHAPES)
def test_it_accepts_honest_records_in_every_statement_shape(db: None, shape: str) -> None:
    found = entries(6)
    insert(honest(found), shape)
    assert RetentionRecord.objects.count() == 6


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    count=st.integers(1, 10),
    data=st.data(),
    shape=st.sampled_from(SHAPES),
    defect=st.sampled_from(tuple(REFUSALS)),
)
def test_it_refuses_an_insert_with_any_one_bad_record_whatever_its_shape(
    db: None, count: int, data: Any, shape: str, defect: str
) -> None:
    with transaction.atomic():
        rows = honest(entries(count))
        at = data.draw(st.integers(0, count - 1))
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match=REFUSALS[defect]):
            insert(damaged(rows, at, defect), shape)
        assert not RetentionRecord.objects.exists()
        transaction.set_rollback(True)


# --- UPDATE, as the runtime role: lengthen only, and never what was disposed of -------------


def recorded(count: int) -> list[int]:
    rows = honest(entries(count))
    insert(rows, "values")
    return [row[0] for row in rows]


def update(statement: str, params: list[Any]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


LENGTHEN = (
    "UPDATE retention_record r SET retain_until = v.until FROM unnest(%s::bigint[],"
    " %s::interval[]) AS v(seq, until) WHERE r.seq = v.seq"
)


def untils(seqs: list[int]) -> list[Any]:
    return list(
        RetentionRecord.objects.filter(entry_id__in=seqs)
        .order_by("entry_id")
        .values_list("retain_until", flat=True)
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(count=st.integers(1, 8), data=st.data())
def test_it_refuses_a_multi_row_update_that_shortens_any_one_record(
    db: None, count: int, data: Any
) -> None:
    with transaction.atomic():
        seqs = recorded(count)
        before = untils(seqs)
        at = data.draw(st.integers(0, count - 1))
        moves = [timedelta(days=1)] * count
        moves[at] = timedelta(seconds=-1)
        statement = LENGTHEN.replace("v.until", "r.retain_until + v.until", 1)
        with pytest.raises(IntegrityError, match=f"seq {seqs[at]} can be kept longer"):
            update(statement, [seqs, moves])
        assert untils(seqs) == before
        transaction.set_rollback(True)


def test_it_lets_the_runtime_role_lengthen_many_records_at_once(db: None) -> None:
    seqs = recorded(5)
    before = untils(seqs)
    update(
        "UPDATE retention_record SET retain_until = retain_until + interval '1 day'"
        " WHERE seq = ANY(%s)",
        [seqs],
    )
    assert untils(seqs) == [u + timedelta(days=1) for u in before]


def test_it_refuses_to_lengthen_a_disposed_record_among_others(committed: None) -> None:
    seqs = recorded(4)
    expire(seqs[1:2])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM retention_dispose(%s::bigint[], %s)",
            [seqs[1:2], new_disposition().pk],
        )
    with pytest.raises(IntegrityError, match=f"seq {seqs[1]} has been disposed of"):
        update(
            "UPDATE retention_record SET retain_until = retain_until + interval '1 day'"
            " WHERE seq = ANY(%s)",
            [seqs],
        )


# --- UPDATE and DELETE, as the owner and the superuser: the guard, not privileges ----------


def as_owner(statement: str, params: list[Any]) -> None:
    owner = connections["owner"].settings_dict["USER"]
    with superuser_connect() as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
        conn.execute(statement, params)


OWNER_CHANGES = [
    ("UPDATE retention_record SET seq = seq + 3 WHERE seq = ANY(%s)", "only the retention of"),
    ("UPDATE retention_record SET kind = 'participant' WHERE seq = ANY(%s)", "only the retention"),
    (
        "UPDATE retention_record SET sealed_at = sealed_at - interval '1 second'"
        " WHERE seq = ANY(%s)",
        "only the retention of",
    ),
    (
        "UPDATE retention_record SET retain_until = CASE WHEN seq = (%s::bigint[])[2]"
        " THEN retain_until - interval '1 second' ELSE retain_until + interval '1 day' END",
        "can be kept longer, never shorter",
    ),
    ("DELETE FROM retention_record WHERE seq = ANY(%s)", "is never deleted"),
]


@pytest.mark.parametrize(("statement", "refusal"), OWNER_CHANGES)
def test_it_refuses_the_owner_multi_row_changes_the_rules_forbid(
    committed: None, statement: str, refusal: str
) -> None:
    seqs = recorded(3)
    entries(3)  # seq + 3 lands on entries without a record
    before = list(RetentionRecord.objects.order_by("entry_id").values_list())
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match=refusal):
        as_owner(statement, [seqs])
    assert list(RetentionRecord.objects.order_by("entry_id").values_list()) == before


def test_it_refuses_the_owner_moving_a_seq_onto_another_record(committed: None) -> None:
    """A rotation of seqs would keep the set of seqs the guard compares; the primary key (checked
    row by row, not deferrable) refuses it first, as it refuses any seq already taken."""
    rows = honest(entries(2)) + honest(entries(1, kind="participant"))
    insert(rows, "values")
    seqs = [row[0] for row in rows]
    with pytest.raises(psycopg.errors.UniqueViolation):
        as_owner(
            "UPDATE retention_record SET seq = CASE seq WHEN %s THEN %s WHEN %s THEN %s"
            " ELSE %s END WHERE seq = ANY(%s)",
            [seqs[0], seqs[2], seqs[2], seqs[1], seqs[0], seqs],
        )


def test_it_refuses_the_owner_changing_a_disposed_record(committed: None) -> None:
    seqs = recorded(3)
    expire(seqs)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM retention_dispose(%s::bigint[], %s)",
            [seqs[:1], new_disposition().pk],
        )
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="has been disposed"):
        as_owner("UPDATE retention_record SET disposed_at = NULL WHERE seq = ANY(%s)", [seqs])


def test_it_refuses_a_superuser_marking_many_records_disposed(committed: None) -> None:
    seqs = recorded(3)
    with (
        superuser_connect() as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="only retention_dispose"),
    ):
        conn.execute("UPDATE retention_record SET disposed_at = now() WHERE seq = ANY(%s)", [seqs])
    assert not RetentionRecord.objects.filter(disposed_at__isnull=False).exists()


def test_it_refuses_the_runtime_role_deleting_nothing_or_everything(db: None) -> None:
    recorded(2)
    with pytest.raises(DatabaseError, match="permission denied"):
        update("DELETE FROM retention_record WHERE seq < 0", [])
    with pytest.raises(DatabaseError, match="permission denied"):
        update("DELETE FROM retention_record", [])
    assert RetentionRecord.objects.count() == 2
