"""A committed ledger for the verification tests, and the attacker who tampers with it."""

from collections.abc import Iterator

import psycopg
import pytest

from archive import ledger
from archive.checkpoints import create_checkpoint
from archive.ledger import Fact
from tests.conftest import superuser_connect

SIZE = 600
CHECKPOINTS = (100, 300, 600)


@pytest.fixture
def archive(committed: None) -> None:
    """600 messages with a body each, sealed in batches of 50, checkpoints at 100, 300, 600."""
    done = 0
    for size in CHECKPOINTS:
        facts = [
            Fact("test.message", {"n": n}, {"body": f"message {n}".encode()})
            for n in range(done, size)
        ]
        for start in range(0, len(facts), 50):
            ledger.append(facts[start : start + 50])
        create_checkpoint()
        done = size


@pytest.fixture
def attacker(archive: None) -> Iterator[psycopg.Connection]:
    """A database superuser with triggers switched off: only hashes and signatures stop them."""
    with superuser_connect() as conn:
        conn.execute("SET session_replication_role = replica")
        yield conn
