"""The ledger evidence of an export: every entry it shows, with its envelope, the contents it
discloses and its RFC 9162 inclusion proof to the export's checkpoint (docs/LEDGER.md §3, §4).

archive/proofs.py answers one proof with several queries; a bundle proves hundreds of thousands
of entries. `entries()` therefore works BATCH entries at a time (three queries), and
`ProofSource` works out exactly which perfect subtrees a batch's proofs need (stored Merkle
nodes of 2**8 leaves or more; below that, the 256-leaf blocks of leaf hashes, hashed once into
their whole subtree), loads those its caches lack in a query or two, and keeps the most
recently used within a fixed size: memory stays bounded whatever the size of the export or of
the ledger, and neighbouring entries, whose paths share nearly every node, cost nothing more.

Every proof is checked against the checkpoint root before it is written: an archive whose
stored nodes disagree with its signed root fails the export instead of shipping a bundle that
its own verifier rejects.

In a subject access export (Scope.redact_others) an entry whose contents may name someone
other than the subject is a private claim: it is listed with its envelope, leaf hash and
proof, but the contents that can name a person are withheld (`WITHHELD` in their place). The
envelope holds only their salted commitments, which disclose nothing.
"""

import base64
import operator
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import reduce
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q

from archive.ledger import NODE_MIN_LEVEL
from archive.merkle import (
    ProofError,
    from_perfect_subtrees,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_hash,
    verify_inclusion,
)
from archive.models import Content, LedgerEntry, MerkleNode
from review.transcript import Row

BLOCK = 1 << NODE_MIN_LEVEL
BATCH = 1000  # entries proved together: three queries, plus the blocks and nodes they lack
# Full, the two caches took a 1M-message export's manifest step from 203 to 288 MB peak RSS
# (docs/SCALE.md §7m): the block trees' bytes (16 KB a block, 32 MB) and ~280 bytes a node
# (its hash, its key, the OrderedDict's links: 18 MB), and the allocator's slack around them.
BLOCKS_HELD = 2048  # 500,000 leaves
NODES_HELD = 65536
_QUERY = 500  # ranges or keys per query: few queries, each still planned well
_PLACEHOLDER = bytes(32)

# What an entry is to the message it belongs to; verify.py checks the same names.
ROLES = ("message", "edit", "revocation", "reaction", "status", "attachment", "media")
# One more, in archives with phone exports (imports/): an export's line that repeats a message
# already archived (`message.imported`, linked rather than imported twice). A message imported
# from an export is itself a "message".
IMPORT = "import"
# In place of a content withheld from a private claim; verify.py accepts "withheld…" there.
WITHHELD = "withheld: GDPR redaction"
# The contents that may name a person, by kind of entry, withheld from a private claim: a raw
# item's sender, a reply's quoted author, a contact card or a status's recipient. Any kind not
# listed is withheld whole: a participant's key is their number, a profile's contents their
# name, a delivery's body every item and contact in it.
IDENTIFYING: dict[str, frozenset[str]] = {
    "message": frozenset({"item"}),  # its "text" and "wamid" are disclosed
    "message.status": frozenset({"item"}),
    "message.attachment": frozenset(),
    "media.file": frozenset(),
    "message.imported": frozenset({"author"}),  # the name a phone export gave; "text" disclosed
}


class EvidenceError(RuntimeError):
    """The ledger cannot prove what the export shows; no bundle is produced."""


@dataclass(frozen=True)
class Claim:
    """One ledger entry a bundle proves, and why it is there."""

    seq: int
    role: str
    message_seq: int | None  # the message it belongs to; None for a media file (shared)
    private: bool = False  # its identifying contents are withheld (see IDENTIFYING)


def claims(row: Row, *, private: bool = False) -> list[Claim]:
    """The message's own entry, then every entry that annotates it, in transcript order."""
    seq = row.message.entry_id
    found = [(seq, "message")]
    found += [(edit.entry_id, "edit") for edit in row.edits]
    if row.revoked is not None:
        found.append((row.revoked.entry_id, "revocation"))
    found += [(reaction.entry_id, "reaction") for reaction in row.reactions]
    found += [(status.entry_id, "status") for status in row.statuses]
    if row.attachment is not None:
        found.append((row.attachment.entry_id, "attachment"))
    found += [(entry.entry_id, IMPORT) for entry in row.linked_imports]
    return [Claim(entry, role, seq, private) for entry, role in found]


def _is_perfect(start: int, end: int) -> bool:
    size = end - start
    return size > 0 and size & (size - 1) == 0 and start % size == 0


class _Block:
    """Every perfect subtree hash of one 256-leaf block, level by level, 32 bytes apiece
    (about 16 KB a block; the ragged last block holds only its complete subtrees)."""

    __slots__ = ("levels",)

    def __init__(self, leaves: list[bytes]) -> None:
        self.levels = [b"".join(leaves)]
        while len(row := self.levels[-1]) >= 64:
            pairs = range(0, len(row) - 32, 64)
            self.levels.append(
                b"".join(node_hash(row[i : i + 32], row[i + 32 : i + 64]) for i in pairs)
            )

    def subtree(self, offset: int, size: int) -> bytes:
        level = size.bit_length() - 1
        found = self.levels[level][(offset >> level) * 32 : ((offset >> level) + 1) * 32]
        if len(found) != 32:
            raise KeyError((offset, size))
        return found


K = TypeVar("K")
V = TypeVar("V")


def _hold(
    cache: OrderedDict[K, V], keys: set[K], load: Callable[[set[K]], dict[K, V]], capacity: int
) -> None:
    """Keep `keys` in `cache` (loading those it lacks), most recently used last, and forget the
    least recently used beyond `capacity`, never one of `keys`."""
    for key in keys & cache.keys():
        cache.move_to_end(key)
    cache.update(load(keys - cache.keys()))
    while len(cache) > max(capacity, len(keys)):
        cache.popitem(last=False)


class ProofSource:
    """A per-export hash source for inclusion proofs into one checkpoint's tree.

    Call `prepare(seqs)` with a batch of entries, then `proof(seq, leaf)` for each of them. An
    export reads conversation by conversation, so its entries are scattered over the ledger and
    the same blocks come back batch after batch: both caches keep what was used last, within
    a fixed size (BLOCKS_HELD, NODES_HELD), so a tree of 500,000 entries is read once at most.
    """

    def __init__(self, tree_size: int, root: bytes, *, using: str = DEFAULT_DB_ALIAS) -> None:
        self.tree_size, self.root, self.using = tree_size, bytes(root), using
        self._blocks: OrderedDict[int, _Block] = OrderedDict()
        self._nodes: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        # The ragged right edge of the tree: the same few ranges for every proof, kept throughout.
        self._edge: dict[tuple[int, int], bytes] = {}

    def prepare(self, seqs: Iterable[int]) -> None:
        """Hold the subtrees the proofs of `seqs` need (and the root's, to check it)."""
        needed: set[tuple[int, int]] = set()

        def record(start: int, end: int) -> bytes:
            needed.add((start, end))
            return _PLACEHOLDER

        recorder = from_perfect_subtrees(record)
        range_hash(0, self.tree_size, record)
        for seq in seqs:
            if not 0 <= seq < self.tree_size:
                raise EvidenceError(f"entry {seq} is not covered by the checkpoint")
            inclusion_proof(seq, self.tree_size, recorder)
        blocks = {start >> NODE_MIN_LEVEL for start, end in needed if end - start < BLOCK}
        nodes = {_node_key(start, end) for start, end in needed if end - start >= BLOCK}
        _hold(self._blocks, blocks, self._load_blocks, BLOCKS_HELD)
        _hold(self._nodes, nodes, self._load_nodes, NODES_HELD)

    def check_root(self) -> None:
        """The stored tree must hash to the signed root (after any `prepare`)."""
        if range_hash(0, self.tree_size, self._subtree) != self.root:
            raise EvidenceError(
                f"the stored Merkle tree of {self.tree_size} entries does not hash to the"
                " checkpoint's root: run `manage.py verify_archive`"
            )

    def proof(self, seq: int, leaf: bytes) -> list[bytes]:
        """The audit path of entry `seq` (whose leaf hash is `leaf`), checked against the root."""
        path = inclusion_proof(seq, self.tree_size, self._subtree)
        try:
            verify_inclusion(leaf, seq, self.tree_size, path, self.root)
        except ProofError as exc:
            raise EvidenceError(f"entry {seq} does not prove into the checkpoint: {exc}") from None
        return path

    def _subtree(self, start: int, end: int) -> bytes:
        if _is_perfect(start, end):
            return self._perfect(start, end)
        if (start, end) not in self._edge:
            self._edge[start, end] = range_hash(start, end, self._perfect)
        return self._edge[start, end]

    def _perfect(self, start: int, end: int) -> bytes:
        try:
            if end - start >= BLOCK:
                return self._nodes[_node_key(start, end)]
            offset = start & (BLOCK - 1)
            return self._blocks[start >> NODE_MIN_LEVEL].subtree(offset, end - start)
        except KeyError:
            raise EvidenceError(f"subtree [{start}, {end}) was not prepared") from None

    def _load_blocks(self, numbers: set[int]) -> dict[int, _Block]:
        leaves: dict[int, list[bytes]] = {n: [] for n in numbers}
        wanted = sorted(numbers)
        for batch in (wanted[i : i + _QUERY] for i in range(0, len(wanted), _QUERY)):
            ranges = (
                Q(
                    seq__gte=n << NODE_MIN_LEVEL,
                    seq__lt=min((n + 1) << NODE_MIN_LEVEL, self.tree_size),
                )
                for n in batch
            )
            rows = LedgerEntry.objects.using(self.using).filter(reduce(operator.or_, ranges))
            for seq, digest in rows.order_by("seq").values_list("seq", "leaf_hash"):
                leaves[seq >> NODE_MIN_LEVEL].append(bytes(digest))
        for number, hashes in leaves.items():
            if len(hashes) != min(BLOCK, self.tree_size - (number << NODE_MIN_LEVEL)):
                raise EvidenceError(f"the ledger lacks leaves of block {number}")
        return {number: _Block(hashes) for number, hashes in leaves.items()}

    def _load_nodes(self, keys: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found: dict[tuple[int, int], bytes] = {}
        wanted = sorted(keys)
        for batch in (wanted[i : i + _QUERY] for i in range(0, len(wanted), _QUERY)):
            rows = MerkleNode.objects.using(self.using).filter(pk__in=batch)
            for level, index, digest in rows.values_list("level", "index", "hash"):
                found[level, index] = bytes(digest)
        missing = keys - found.keys()
        if missing:
            level, index = min(missing)
            raise EvidenceError(f"no stored Merkle node {level}/{index}")
        return found


def _node_key(start: int, end: int) -> tuple[int, int]:
    level = (end - start).bit_length() - 1
    return level, start >> level


def entries(
    found: Iterable[Claim], proofs: ProofSource, *, using: str = DEFAULT_DB_ALIAS
) -> Iterator[dict[str, Any]]:
    """The manifest items of `found`, in order, BATCH at a time: three queries a batch, and
    whatever proof material the caches lack."""
    batch: list[Claim] = []
    for claim in found:
        batch.append(claim)
        if len(batch) == BATCH:
            yield from _items(batch, proofs, using)
            batch = []
    yield from _items(batch, proofs, using)


def _items(found: list[Claim], proofs: ProofSource, using: str) -> Iterator[dict[str, Any]]:
    seqs = [claim.seq for claim in found]
    rows = LedgerEntry.objects.using(using).filter(seq__in=seqs)
    ledger = {
        seq: (kind, bytes(env), bytes(leaf))
        for seq, kind, env, leaf in rows.values_list("seq", "kind", "envelope", "leaf_hash")
    }
    disclosed: dict[int, dict[str, dict[str, str]]] = {}
    contents = Content.objects.using(using).filter(entry_id__in=seqs).order_by("entry_id", "name")
    for seq, name, salt, content in contents.values_list("entry_id", "name", "salt", "content"):
        disclosed.setdefault(seq, {})[name] = {
            "salt": bytes(salt).hex(),
            "content": base64.b64encode(bytes(content)).decode("ascii"),
        }
    proofs.prepare(seqs)
    for claim in found:
        if claim.seq not in ledger:
            raise EvidenceError(f"ledger entry {claim.seq} is missing")
        yield _item(claim, *ledger[claim.seq], disclosed.get(claim.seq, {}), proofs)


def _item(
    claim: Claim,
    kind: str,
    envelope: bytes,
    stored_leaf: bytes,
    contents: dict[str, dict[str, str]],
    proofs: ProofSource,
) -> dict[str, Any]:
    leaf = leaf_hash(envelope)
    if leaf != stored_leaf:
        raise EvidenceError(f"entry {claim.seq}'s leaf hash does not match its envelope")
    try:
        text = envelope.decode("utf-8")  # canonical JSON is UTF-8; shown as text, read back exactly
    except UnicodeDecodeError:
        raise EvidenceError(f"entry {claim.seq}'s envelope is not UTF-8") from None
    item: dict[str, Any] = {
        "seq": claim.seq,
        "kind": kind,
        "role": claim.role,
        "envelope": text,
        "leaf_hash": leaf.hex(),
        "proof": [node.hex() for node in proofs.proof(claim.seq, leaf)],
        "contents": _withhold(kind, contents) if claim.private else contents,
    }
    if claim.message_seq is not None:
        item["message_seq"] = claim.message_seq
    return item


def _withhold(kind: str, contents: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The contents of a private claim: those that may name a person replaced by WITHHELD."""
    hidden = IDENTIFYING.get(kind)
    return {
        name: WITHHELD if hidden is None or name in hidden else content
        for name, content in contents.items()
    }
