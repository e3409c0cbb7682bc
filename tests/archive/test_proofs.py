import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from archive import ledger
from archive.ledger import Fact
from archive.merkle import InMemoryTree, ProofError, verify_consistency, verify_inclusion
from archive.models import LedgerEntry
from archive.proofs import ProofUnavailable, entry_inclusion_proof, ledger_consistency_proof

pytestmark = pytest.mark.django_db
SIZE = 700  # past two 256-leaf nodes and one 512-leaf node


@pytest.fixture
def leaves():
    for start in range(0, SIZE, 100):
        ledger.append([Fact("test.fact", {"n": n}) for n in range(start, start + 100)])
    return InMemoryTree(bytes(h) for h in LedgerEntry.objects.values_list("leaf_hash", flat=True))


@pytest.mark.parametrize("seq", [0, 1, 255, 256, 511, 600, SIZE - 1])
def test_it_proves_an_entry_against_the_root_of_a_later_tree(leaves, seq):
    for size in sorted({seq + 1, 512, SIZE} - set(range(seq + 1))):
        proof = entry_inclusion_proof(seq, size)
        verify_inclusion(leaves._leaves[seq], seq, size, proof, leaves.root(size))


@pytest.mark.parametrize(("old", "new"), [(1, SIZE), (256, 512), (300, 699), (512, SIZE)])
def test_it_proves_consistency_between_tree_sizes(leaves, old, new):
    proof = ledger_consistency_proof(old, new)
    verify_consistency(old, new, leaves.root(old), leaves.root(new), proof)


def test_it_builds_proofs_from_few_queries(leaves):
    with CaptureQueriesContext(connection) as queries:
        entry_inclusion_proof(3, SIZE)
    assert len(queries) <= 4  # two leaf blocks and one stored node


def test_it_gives_proofs_that_fail_for_another_entry(leaves):
    proof = entry_inclusion_proof(10, SIZE)
    with pytest.raises(ProofError):
        verify_inclusion(leaves._leaves[11], 10, SIZE, proof, leaves.root())


def test_it_says_when_the_ledger_is_too_short_for_a_proof(leaves):
    with pytest.raises((ProofUnavailable, ValueError)):
        entry_inclusion_proof(5, SIZE + 10)
