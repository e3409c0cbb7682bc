"""Merkle proofs over the ledger, read from stored nodes rather than by rehashing the world.

A perfect subtree of 2**8 leaves or more is one `archive_merklenode` row; a smaller one is at most
255 leaf hashes from the ledger. An inclusion or consistency proof therefore costs O(log n) small
queries whatever the ledger's size. Exports use these to prove each entry against a checkpoint.
"""

from django.db import DEFAULT_DB_ALIAS

from archive.ledger import NODE_MIN_LEVEL
from archive.merkle import (
    InMemoryTree,
    SubtreeSource,
    consistency_proof,
    from_perfect_subtrees,
    inclusion_proof,
)
from archive.models import LedgerEntry, MerkleNode


class ProofUnavailable(LookupError):
    """The ledger does not (or no longer) hold what the proof needs."""


def stored_subtrees(using: str = DEFAULT_DB_ALIAS) -> SubtreeSource:
    """A hash source answering from archive_merklenode and, for small subtrees, leaf hashes."""
    blocks: dict[int, list[bytes]] = {}  # leaf hashes per 2**NODE_MIN_LEVEL block, read once

    def block(number: int) -> list[bytes]:
        if number not in blocks:
            first = number << NODE_MIN_LEVEL
            rows = LedgerEntry.objects.using(using).filter(
                seq__gte=first, seq__lt=first + (1 << NODE_MIN_LEVEL)
            )
            blocks[number] = [
                bytes(h) for h in rows.order_by("seq").values_list("leaf_hash", flat=True)
            ]
        return blocks[number]

    def perfect(start: int, end: int) -> bytes:
        level = (end - start).bit_length() - 1
        if level >= NODE_MIN_LEVEL:
            node = MerkleNode.objects.using(using).filter(level=level, index=start >> level)
            found = node.values_list("hash", flat=True).first()
            if found is None:
                raise ProofUnavailable(f"no stored node for leaves [{start}, {end})")
            return bytes(found)
        offset = start & ((1 << NODE_MIN_LEVEL) - 1)
        hashes = block(start >> NODE_MIN_LEVEL)[offset : offset + end - start]
        if len(hashes) != end - start:
            raise ProofUnavailable(f"ledger lacks leaves in [{start}, {end})")
        return InMemoryTree(hashes).root()

    return from_perfect_subtrees(perfect)


def entry_inclusion_proof(
    seq: int, tree_size: int, *, using: str = DEFAULT_DB_ALIAS
) -> list[bytes]:
    """The RFC 9162 inclusion proof of entry `seq` in the tree of the first `tree_size` entries."""
    return inclusion_proof(seq, tree_size, stored_subtrees(using))


def ledger_consistency_proof(
    old_size: int, new_size: int, *, using: str = DEFAULT_DB_ALIAS
) -> list[bytes]:
    """The RFC 9162 proof that the tree of `new_size` entries extends that of `old_size`."""
    return consistency_proof(old_size, new_size, stored_subtrees(using))
