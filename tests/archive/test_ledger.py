import hashlib
import json

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
