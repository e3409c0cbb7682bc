import hashlib
import json
from datetime import UTC, datetime

import pytest
import rfc8785
from django.db import connection, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import ledger
from archive.ledger import Fact, LedgerError
from archive.merkle import leaf_hash
from archive.models import ChainHead, Content, LedgerEntry

pytestmark = pytest.mark.django_db


def test_it_starts_the_chain_at_seq_zero_from_the_zero_link():
    (entry,) = ledger.append([Fact("test.fact", {"n": 1})])
    assert entry.seq == 0
    assert bytes(entry.link) == hashlib.sha256(b"\x02" + bytes(32) + entry.leaf_hash).digest()


def test_it_links_each_entry_to_the_previous_one():
    first, second = ledger.append([Fact("test.fact"), Fact("test.fact")])
    assert second.seq == first.seq + 1
    assert second.link == hashlib.sha256(b"\x02" + first.link + second.leaf_hash).digest()


def test_it_stores_what_it_returns():
    (entry,) = ledger.append([Fact("test.fact", {"name": "x"})])
    stored = LedgerEntry.objects.get(seq=entry.seq)
    assert bytes(stored.envelope) == entry.envelope
    assert bytes(stored.leaf_hash) == leaf_hash(entry.envelope)
    assert stored.sealed_at == entry.sealed_at


def test_it_writes_canonical_envelopes_naming_the_entry():
    (entry,) = ledger.append([Fact("test.fact", {"b": True, "a": None, "z": "é"})])
    body = json.loads(entry.envelope)
    assert entry.envelope == rfc8785.dumps(body)
    assert (body["v"], body["seq"], body["kind"]) == (1, entry.seq, "test.fact")
    assert body["sealed_at"] == ledger.rfc3339(entry.sealed_at)


def test_it_keeps_content_out_of_the_envelope_but_committed():
    (entry,) = ledger.append([Fact("test.message", contents={"body": b"secret words"})])
    assert b"secret" not in entry.envelope
    content = Content.objects.get(entry=entry, name="body")
    expected = ledger.commitment("body", bytes(content.salt), b"secret words").hex()
    assert json.loads(entry.envelope)["commit.body"] == expected


def test_it_uses_a_fresh_salt_for_every_content():
    ledger.append([Fact("test.message", contents={"body": b"same"})] * 2)
    salts = {bytes(c.salt) for c in Content.objects.all()}
    assert len(salts) == 2 and all(len(s) == 32 for s in salts)


@pytest.mark.parametrize(
    "fact",
    [
        Fact("Bad Kind"),
        Fact("test.fact", {"seq": 5}),
        Fact("test.fact", {"commit.body": "x"}),
        Fact("test.fact", {"nested": {"a": 1}}),  # type: ignore[dict-item]
        Fact("test.fact", {"big": 2**60}),
        Fact("test.fact", contents={"body": "not bytes"}),  # type: ignore[dict-item]
    ],
)
def test_it_refuses_facts_it_cannot_seal_honestly(fact):
    with pytest.raises(LedgerError):
        ledger.append([fact])
    assert ChainHead.objects.get().size == 0


def test_it_seals_records_and_entries_in_one_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        ledger.append([Fact("test.fact")])
        raise RuntimeError("the caller's record failed")
    assert LedgerEntry.objects.count() == 0
    assert ChainHead.objects.get().size == 0


def test_it_keeps_the_chain_head_in_step():
    entries = ledger.append([Fact("test.fact")] * 3)
    head = ChainHead.objects.get()
    assert (head.size, bytes(head.link)) == (3, entries[-1].link)


def test_it_refuses_an_entry_that_breaks_the_chain_even_from_the_runtime_role():
    ledger.append([Fact("test.fact")])
    envelope = b'{"forged":true}'
    leaf = leaf_hash(envelope)
    with pytest.raises(Exception, match="does not extend the chain"), connection.cursor() as c:
        c.execute(
            "INSERT INTO archive_ledgerentry VALUES (1, 'x', %s, %s, %s, now())",
            [envelope, leaf, hashlib.sha256(b"\x02" + bytes(32) + leaf).digest()],
        )


def test_it_refuses_a_gap_in_seq():
    envelope = b"{}"
    leaf = leaf_hash(envelope)
    with pytest.raises(Exception, match="gap"), connection.cursor() as c:
        c.execute(
            "INSERT INTO archive_ledgerentry VALUES (5, 'x', %s, %s, %s, now())",
            [envelope, leaf, hashlib.sha256(b"\x02" + bytes(32) + leaf).digest()],
        )


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=40)
)
names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in ledger.RESERVED_KEYS
)


@settings(max_examples=60, deadline=None)
@given(fields=st.dictionaries(names, scalars, max_size=6))
def test_it_builds_envelopes_that_round_trip_canonically(fields):
    from datetime import UTC, datetime

    envelope = ledger.build_envelope(7, Fact("test.fact", fields), datetime.now(UTC), {})
    body = json.loads(envelope)
    assert rfc8785.dumps(body) == envelope
    assert {k: body[k] for k in fields} == fields


# --- The chain check holds for every statement shape (archive/migrations/0006) -------------

SHAPES = ("values", "rows", "copy", "select")
# "repeat": an entry with its predecessor's link; no unique index refuses it (archive 0010), the
# chain check does
DEFECTS = ("leaf", "link", "repeat", "gap", "envelope")
REFUSALS = {
    "leaf": "does not match its envelope",
    "envelope": "does not match its envelope",
    "link": "does not extend the chain",
    "repeat": "does not extend the chain",
    "gap": "would leave a gap",
}
Row = tuple[int, str, bytes, bytes, bytes]


def chained_rows(count: int) -> list[Row]:
    """`count` honest entries extending the ledger as it stands."""
    head = ChainHead.objects.get()
    link, rows = bytes(head.link), []
    for seq in range(head.size, head.size + count):
        envelope = json.dumps({"n": seq}).encode()
        leaf = leaf_hash(envelope)
        link = ledger.chain_link(link, leaf)
        rows.append((seq, "test.fact", envelope, leaf, link))
    return rows


def damaged(rows: list[Row], at: int, defect: str) -> list[Row]:
    out = list(rows)
    seq, kind, envelope, leaf, link = out[at]
    if defect == "leaf":
        out[at] = (seq, kind, envelope, bytes(32), link)
    elif defect == "envelope":
        out[at] = (seq, kind, envelope + b" ", leaf, link)
    elif defect == "link":
        out[at] = (seq, kind, envelope, leaf, hashlib.sha256(link).digest())
    elif defect == "repeat":
        previous = out[at - 1][4] if at else bytes(ChainHead.objects.get().link)
        out[at] = (seq, kind, envelope, leaf, previous)
    else:  # this entry and the rest one seq further: seq - 1 of this one was never written
        out[at:] = [(s + 1, *rest) for s, *rest in out[at:]]
    return out


def insert(rows: list[Row], shape: str) -> None:
    """The rows as the runtime role, in one of the ways a statement can carry them."""
    columns = "archive_ledgerentry (seq, kind, envelope, leaf_hash, link, sealed_at)"
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor
        if shape == "values":
            marks = ", ".join(["(%s, %s, %s, %s, %s, now())"] * len(rows))
            raw.execute(f"INSERT INTO {columns} VALUES {marks}", [v for r in rows for v in r])
        elif shape == "rows":
            raw.executemany(f"INSERT INTO {columns} VALUES (%s, %s, %s, %s, %s, now())", rows)
        elif shape == "copy":
            with raw.copy(f"COPY {columns} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((*row, "2026-01-01T00:00:00Z"))
        else:
            raw.execute(
                f"INSERT INTO {columns} SELECT s, k, e, l, n, now() FROM unnest(%s::bigint[],"
                " %s::text[], %s::bytea[], %s::bytea[], %s::bytea[]) AS r(s, k, e, l, n)",
                [list(column) for column in zip(*rows, strict=True)],
            )


@pytest.mark.parametrize("shape", SHAPES)
def test_it_accepts_honest_entries_in_every_statement_shape(shape):
    ledger.append([Fact("test.fact")])
    rows = chained_rows(5)
    insert(rows, shape)
    assert list(LedgerEntry.objects.values_list("seq", flat=True)) == list(range(6))


@pytest.mark.parametrize("shape", SHAPES)
def test_it_refuses_seq_zero_that_does_not_start_from_the_zero_link(shape):
    (row,) = chained_rows(1)
    seq, kind, envelope, leaf, _ = row
    with pytest.raises(Exception, match="does not extend the chain"):
        insert(
            [(seq, kind, envelope, leaf, hashlib.sha256(b"\x02" + bytes(1) * 32).digest())], shape
        )
    assert not LedgerEntry.objects.exists()


@settings(max_examples=40, deadline=None)
@given(
    before=st.integers(0, 3),
    count=st.integers(1, 12),
    data=st.data(),
    shape=st.sampled_from(SHAPES),
    defect=st.sampled_from(DEFECTS),
)
def test_it_refuses_a_statement_with_any_one_bad_entry_whatever_its_shape(
    before, count, data, shape, defect
):
    """One bad entry anywhere in a multi-row INSERT, a pipelined batch, a COPY or an
    INSERT … SELECT refuses the whole statement, and the ledger is as it was."""
    with transaction.atomic():
        ledger.append([Fact("test.fact")] * before)
        rows = chained_rows(count)
        at = data.draw(st.integers(0, count - 1))
        with pytest.raises(Exception, match=REFUSALS[defect]):
            insert(damaged(rows, at, defect), shape)
        assert LedgerEntry.objects.count() == before
        transaction.set_rollback(True)


# --- Envelope bytes are evidence: the faster build gives exactly the same bytes -------------


def reference_envelope(seq, fact, sealed_at, commits):
    """docs/LEDGER.md §2 taken literally, through the general RFC 8785 package."""
    body = {"v": 1, "seq": seq, "kind": fact.kind}
    body["sealed_at"] = sealed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body |= dict(fact.fields)
    body |= {f"commit.{name}": digest.hex() for name, digest in commits.items()}
    return rfc8785.dumps(body)


def test_it_builds_the_envelope_of_a_known_fact_byte_for_byte():
    fact = Fact("message", {"direction": "in", "sent_at": 1732500000, "media": False, "x": None})
    sealed_at = datetime(2026, 12, 3, 23, 0, 0, 123456, tzinfo=UTC)
    envelope = ledger.build_envelope(41, fact, sealed_at, {"text": bytes(range(32))})
    assert envelope == (
        b'{"commit.text":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",'
        b'"direction":"in","kind":"message","media":false,"sealed_at":'
        b'"2026-12-03T23:00:00.123456Z","sent_at":1732500000,"seq":41,"v":1,"x":null}'
    )


moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.timezones()
)


@settings(max_examples=200, deadline=None)
@given(
    fields=st.dictionaries(names, scalars, max_size=6),
    kind=names,
    stamps=st.lists(moments, min_size=1, max_size=4),
    data=st.data(),
)
def test_it_builds_the_same_bytes_as_the_specification_for_any_fact(fields, kind, stamps, data):
    """Batches share one seal time (formatted once) and kinds are checked once per process:
    whatever the order of moments, zones and kinds, the bytes are the reference's."""
    commits = {"text": bytes(32), "media.caption": bytes(range(32))}
    for seq, moment in enumerate(stamps + stamps[::-1]):
        fact = Fact(kind, fields)
        moment = data.draw(st.sampled_from([moment, moment.astimezone(UTC)]))
        assert ledger.build_envelope(seq, fact, moment, commits) == reference_envelope(
            seq, fact, moment, commits
        )
