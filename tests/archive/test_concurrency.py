"""Concurrent appenders serialise on the chain head and never fork or gap the chain."""

import threading

import psycopg
import pytest
from django.db import connection

from archive import ledger
from archive.ledger import Fact, chain_link
from archive.merkle import leaf_hash
from archive.models import LedgerEntry
from archive.verify import verify_ledger
from tests.conftest import superuser_connect

APPENDERS, BATCHES, BATCH = 8, 10, 5


def appender(number: int, errors: list[BaseException]) -> None:
    try:
        for batch in range(BATCHES):
            ledger.append([Fact("test.fact", {"who": number, "batch": batch})] * BATCH)
    except BaseException as exc:  # reported by the test, not swallowed
        errors.append(exc)
    finally:
        connection.close()


def test_it_keeps_one_chain_under_concurrent_appenders(committed):
    errors: list[BaseException] = []
    threads = [threading.Thread(target=appender, args=(n, errors)) for n in range(APPENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    seqs = list(LedgerEntry.objects.values_list("seq", flat=True))
    assert seqs == list(range(APPENDERS * BATCHES * BATCH))
    assert verify_ledger().intact


def test_it_makes_a_fork_impossible_to_commit_even_for_a_superuser_writer(committed):
    """Two writers that both extend seq 0 cannot both commit: the key on seq decides."""
    (first,) = ledger.append([Fact("test.fact")])
    rows = []
    for text in (b'{"a":1}', b'{"b":2}'):
        leaf = leaf_hash(text)
        rows.append((1, "x", text, leaf, chain_link(bytes(first.link), leaf)))
    with superuser_connect() as one, superuser_connect() as two:
        one.execute("INSERT INTO archive_ledgerentry VALUES (%s, %s, %s, %s, %s, now())", rows[0])
        with pytest.raises(psycopg.errors.UniqueViolation):
            two.execute(
                "INSERT INTO archive_ledgerentry VALUES (%s, %s, %s, %s, %s, now())", rows[1]
            )
