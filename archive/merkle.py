"""RFC 6962 / RFC 9162 Merkle tree (SHA-256): hashing, a compact range, proofs and verifiers.

The archive's ledger is an append-only list of leaf hashes. This module is the only place that
knows how those leaves fold into a tree:

* `leaf_hash` / `node_hash` / `EMPTY_ROOT` are the RFC 6962 §2.1 hashes (domain-separated).
* `CompactRange` is the O(log n) frontier the ledger keeps in its chain-head row: appending a leaf
  returns the perfect subtrees it completed, so callers can store some of them as proof material.
* `inclusion_proof` / `consistency_proof` (and the `subtree_*` variants of the Merkle Tree
  Certificates draft) build proofs from a *hash source* callback instead of rehashing every leaf.
* `verify_*` check proofs as an external verifier would; any malformed input raises `ProofError`.

Node (level, index) covers leaves [index * 2**level, (index + 1) * 2**level). A range [start, end)
is a *valid subtree* when start is a multiple of the smallest power of two >= end - start; perfect
subtrees and the ragged right edge of a tree are both valid subtrees.

The subtree verifiers follow transparency-dev/merkle `proof/verify.go` (Apache-2.0), so that the
test vectors copied beside the tests (tests/archive/rfc6962_vectors) pass unchanged.
"""

import hashlib
from collections.abc import Callable, Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Tree sizes and indices are uint64 everywhere else (Go, the C2SP specs); anything larger is junk.
MAX_UINT64 = 2**64 - 1

SubtreeSource = Callable[[int, int], bytes]
"""`subtree(start, end)` -> MTH of leaves [start, end); only ever asked for valid subtrees."""

Node = tuple[int, int, bytes]
"""(level, index, hash) of a perfect subtree."""

BytesLike = bytes | bytearray | memoryview
"""What the verifiers accept for a hash: database drivers hand back memoryview or bytearray."""


class ProofError(ValueError):
    """A proof, or the claim it is checked against, does not verify or is malformed."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


# --------------------------------------------------------------------------- bit helpers


def _split(size: int) -> int:
    """The largest power of two strictly below `size` (RFC 6962's k); requires size >= 2."""
    return 1 << ((size - 1).bit_length() - 1)


def _bit_ceil(size: int) -> int:
    """The smallest power of two >= size (1 for 0 and 1)."""
    return 1 if size <= 1 else 1 << (size - 1).bit_length()


def _trailing_zeros(value: int) -> int:
    return (value & -value).bit_length() - 1


def _is_perfect(start: int, end: int) -> bool:
    """True when [start, end) is one aligned node: a power-of-two size starting at a multiple."""
    size = end - start
    return size > 0 and size & (size - 1) == 0 and start % size == 0


def _is_valid_subtree(start: int, end: int) -> bool:
    """MTC draft validity; an empty range is valid, as in transparency-dev's isSubtreeValid."""
    if start > end:
        return False
    return start in (0, end) or start % _bit_ceil(end - start) == 0


# --------------------------------------------------------------------------- compact range


class CompactRange:
    """The roots of the perfect subtrees covering leaves [0, size), largest first.

    This is all the state needed to keep appending and to compute the root, so the ledger stores
    it (`to_bytes`) in its chain-head row instead of reading the tree back.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The subtree roots, largest (leftmost) first; one per set bit of `size`."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> list[Node]:
        """Add one leaf hash; return the nodes at level >= 1 that this leaf completed, lowest first.

        Amortised O(1): a leaf merges with the trailing subtrees as a binary counter carries.
        """
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}")
        node, level, index = bytes(leaf), 0, self._size
        completed: list[Node] = []
        while index & 1:  # an odd index is a right child: its left sibling is the last root
            node = node_hash(self._hashes.pop(), node)
            level, index = level + 1, index >> 1
            completed.append((level, index, node))
        self._hashes.append(node)
        self._size += 1
        return completed

    def append_node(self, level: int, node: bytes) -> list[Node]:
        """Add the root of the perfect subtree of 2**level leaves starting at `size`; return the
        nodes above it that this completed, lowest first.

        verify_archive's workers hash aligned slices of the ledger themselves: the parent adds
        each slice as its few perfect subtrees instead of as 2**level leaves.
        """
        if self._size % (1 << level):
            raise ValueError(f"a level-{level} node cannot start at leaf {self._size}")
        if len(node) != HASH_SIZE:
            raise ValueError(f"a node hash is {HASH_SIZE} bytes, got {len(node)}")
        added, index = 1 << level, self._size >> level
        completed: list[Node] = []
        while index & 1:  # as append(), from `level` up
            node = node_hash(self._hashes.pop(), node)
            level, index = level + 1, index >> 1
            completed.append((level, index, node))
        self._hashes.append(bytes(node))
        self._size += added
        return completed

    def copy(self) -> "CompactRange":
        """An independent range at the same size (e.g. to compute a root part-way)."""
        other = CompactRange()
        other._size, other._hashes = self._size, list(self._hashes)
        return other

    def extend(self, leaves: Iterable[bytes]) -> list[Node]:
        """Append many leaf hashes; return every node they completed, in completion order."""
        completed: list[Node] = []
        for leaf in leaves:
            completed.extend(self.append(leaf))
        return completed

    def root(self) -> bytes:
        """RFC 6962 MTH of leaves [0, size): fold the roots right to left; EMPTY_ROOT when empty."""
        if not self._hashes:
            return EMPTY_ROOT
        node = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            node = node_hash(left, node)
        return node

    def to_bytes(self) -> bytes:
        """The subtree roots concatenated, largest first (popcount(size) * 32 bytes)."""
        return b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, size: int, blob: BytesLike) -> "CompactRange":
        """Rebuild the range `to_bytes` produced for `size` leaves; ValueError if they disagree."""
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_UINT64:
            raise ValueError(f"size must be an integer in [0, 2**64), got {size!r}")
        blob = bytes(blob)
        if len(blob) != size.bit_count() * HASH_SIZE:
            raise ValueError(
                f"a range of size {size} is {size.bit_count()} hashes, got {len(blob)} bytes"
            )
        compact = cls()
        compact._size = size
        compact._hashes = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
        return compact


def subtree_levels(leaves: bytes, top: int) -> list[bytes]:
    """The complete nodes of levels 0..top over `leaves` (concatenated leaf hashes, the first
    one aligned on 2**top), each level's hashes concatenated: levels[level][32 * i:] is node i.

    verify_archive's workers hash their slice level by level: one `node_hash` per node, with
    no per-leaf bookkeeping.
    """
    sha256, levels, current = hashlib.sha256, [bytes(leaves)], bytes(leaves)
    for _level in range(top):
        pairs = len(current) // (2 * HASH_SIZE) * 2 * HASH_SIZE
        current = b"".join(
            [sha256(b"\x01" + current[i : i + 2 * HASH_SIZE]).digest() for i in range(0, pairs, 64)]
        )
        levels.append(current)
    return levels


def range_cut(levels: list[bytes], size: int) -> list[tuple[int, bytes]]:
    """The perfect subtrees covering the first `size` leaves of `levels` (subtree_levels),
    largest first, as (level, hash)."""
    cut, offset = [], 0
    for level in range(len(levels) - 1, -1, -1):
        if size >> level & 1:
            at = (offset >> level) * HASH_SIZE
            cut.append((level, levels[level][at : at + HASH_SIZE]))
            offset += 1 << level
    return cut


# --------------------------------------------------------------------------- hash sources


def range_hash(start: int, end: int, subtree: SubtreeSource) -> bytes:
    """MTH of leaves [start, end), asking `subtree` only for aligned perfect subtrees.

    Splits as RFC 6962 does (largest power of two first). For a valid subtree the left part is
    always one aligned node, so this costs O(log n) calls; other ranges still hash correctly.
    """
    if not 0 <= start <= end:
        raise ValueError(f"bad range [{start}, {end})")
    if start == end:
        return EMPTY_ROOT
    if _is_perfect(start, end):
        return subtree(start, end)
    middle = start + _split(end - start)
    return node_hash(range_hash(start, middle, subtree), range_hash(middle, end, subtree))


def from_perfect_subtrees(perfect: SubtreeSource) -> SubtreeSource:
    """Wrap a source that only knows aligned perfect subtrees (e.g. stored nodes) into a full one.

    The proof generators also ask for the ragged right edge of a tree; this answers those by
    combining perfect subtrees with `range_hash`.
    """

    def subtree(start: int, end: int) -> bytes:
        return perfect(start, end) if _is_perfect(start, end) else range_hash(start, end, perfect)

    return subtree


class InMemoryTree:
    """All leaf hashes in memory; `subtree` computes MTH directly (RFC 6962 §2.1 recursion).

    For tests and small trees: it is the reference the streaming code is checked against.
    """

    def __init__(self, leaf_hashes: Iterable[bytes]) -> None:
        self._leaves = [bytes(h) for h in leaf_hashes]
        # Memoised so that proofs over a few hundred leaves stay cheap in property tests.
        self._memo: dict[tuple[int, int], bytes] = {}

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._leaves)

    def subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end) for any 0 <= start <= end <= size."""
        if not 0 <= start <= end <= len(self._leaves):
            raise ValueError(f"bad range [{start}, {end}) for {len(self._leaves)} leaves")
        if end - start <= 1:
            return self._leaves[start] if end > start else EMPTY_ROOT
        if (start, end) not in self._memo:
            middle = start + _split(end - start)
            self._memo[start, end] = node_hash(
                self.subtree(start, middle), self.subtree(middle, end)
            )
        return self._memo[start, end]

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` leaves (all of them by default)."""
        return self.subtree(0, len(self._leaves) if size is None else size)


# --------------------------------------------------------------------------- proof generation


def _path(index: int, start: int, end: int, subtree: SubtreeSource) -> list[bytes]:
    """RFC 6962 PATH(index - start, D[start:end]), walked top-down and returned bottom-up."""
    proof: list[bytes] = []
    lo, hi = start, end
    while hi - lo > 1:
        middle = lo + _split(hi - lo)
        if index < middle:
            proof.append(subtree(middle, hi))
            hi = middle
        else:
            proof.append(subtree(lo, middle))
            lo = middle
    proof.reverse()
    return proof


def inclusion_proof(index: int, tree_size: int, subtree: SubtreeSource) -> list[bytes]:
    """RFC 6962 PATH(index, D[tree_size]): the audit path for one leaf, lowest sibling first."""
    if not 0 <= index < tree_size:
        raise ValueError(f"index {index} is not in a tree of size {tree_size}")
    return _path(index, 0, tree_size, subtree)


def consistency_proof(old_size: int, new_size: int, subtree: SubtreeSource) -> list[bytes]:
    """RFC 6962 PROOF(old_size, D[new_size]); empty when the sizes are equal."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    return subtree_consistency_proof(0, old_size, new_size, subtree)


def subtree_inclusion_proof(
    index: int, start: int, end: int, subtree: SubtreeSource
) -> list[bytes]:
    """MTC draft subtree inclusion proof: the audit path of `index` inside subtree [start, end)."""
    if not (_is_valid_subtree(start, end) and start <= index < end):
        raise ValueError(f"index {index} is not in a valid subtree [{start}, {end})")
    return _path(index, start, end, subtree)


def subtree_consistency_proof(
    start: int, end: int, tree_size: int, subtree: SubtreeSource
) -> list[bytes]:
    """MTC draft SUBTREE_PROOF(start, end, D[tree_size]); for start == 0 it is RFC 6962 PROOF."""
    if not (start < end <= tree_size and _is_valid_subtree(start, end)):
        raise ValueError(f"[{start}, {end}) is not a valid subtree of a tree of size {tree_size}")
    proof: list[bytes] = []
    lo, hi, known = 0, tree_size, True  # [lo, hi) is the frame; start/end stay absolute
    while (start, end) != (lo, hi):
        middle = lo + _split(hi - lo)
        if end <= middle:
            proof.append(subtree(middle, hi))
            hi = middle
        else:
            proof.append(subtree(lo, middle))
            # Straddling the split only happens for start == lo; the verifier then lacks the
            # hash of the part of [start, end) right of the split, so it goes in the proof.
            known = known and start >= middle
            lo, start = middle, max(start, middle)
    if not known:
        proof.append(subtree(lo, hi))
    proof.reverse()
    return proof


# --------------------------------------------------------------------------- input checks


def _uint(name: str, value: object) -> int:
    # bool is an int subclass; a True "index" is a caller bug, not a leaf number.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UINT64:
        raise ProofError(f"{name} must be an integer in [0, 2**64), got {value!r}")
    return value


def _bytes(name: str, value: object) -> bytes:
    if not isinstance(value, BytesLike):
        raise ProofError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


def _hash(name: str, value: object) -> bytes:
    digest = _bytes(name, value)
    if len(digest) != HASH_SIZE:
        raise ProofError(f"{name} must be {HASH_SIZE} bytes, got {len(digest)}")
    return digest


def _proof(value: object) -> list[bytes]:
    if not isinstance(value, list | tuple):
        raise ProofError(f"proof must be a list of hashes, got {type(value).__name__}")
    # A wrong-sized element can never be part of a valid proof; reject it before hashing.
    return [_hash(f"proof[{i}]", element) for i, element in enumerate(value)]


def _match(name: str, computed: bytes, expected: bytes) -> None:
    if computed != expected:
        raise ProofError(f"{name} mismatch: computed {computed.hex()}, expected {expected.hex()}")


# --------------------------------------------------------------------------- RFC 9162 verifiers


def root_from_inclusion_proof(
    leaf_hash: BytesLike, index: int, tree_size: int, proof: Sequence[BytesLike]
) -> bytes:
    """The root that `proof` implies for leaf `index` of a tree of `tree_size` (RFC 9162 §2.1.3.2).

    Raises ProofError when the proof has the wrong number of elements for (index, tree_size).
    """
    fn, sn = _uint("index", index), _uint("tree_size", tree_size)
    node, path = _hash("leaf_hash", leaf_hash), _proof(proof)
    if fn >= sn:
        raise ProofError(f"index {fn} is not in a tree of size {sn}")
    sn -= 1
    for sibling in path:
        if sn == 0:
            raise ProofError("proof has more elements than the path to the root")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            # On the right edge, levels with no sibling are skipped (the node is promoted).
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("proof has fewer elements than the path to the root")
    return node


def verify_inclusion(
    leaf_hash: BytesLike, index: int, tree_size: int, proof: Sequence[BytesLike], root: BytesLike
) -> None:
    """Check that leaf `index` with `leaf_hash` is in the tree (`tree_size`, `root`)."""
    computed = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)
    _match("root", computed, _bytes("root", root))


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: BytesLike,
    new_root: BytesLike,
    proof: Sequence[BytesLike],
) -> None:
    """Check that the tree (old_size, old_root) is a prefix of (new_size, new_root).

    RFC 9162 §2.1.4.2. As in transparency-dev/merkle, a proof from size 0 is meaningless and
    rejected, and equal sizes need an empty proof and byte-equal roots.
    """
    size1, size2 = _uint("old_size", old_size), _uint("new_size", new_size)
    root1, root2, path = _bytes("old_root", old_root), _bytes("new_root", new_root), _proof(proof)
    if size1 > size2:
        raise ProofError(f"old_size {size1} > new_size {size2}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if path:
            raise ProofError("equal sizes need an empty proof")
        _match("root", root1, root2)
        return
    if not path:
        raise ProofError("empty proof for different sizes")
    if size1 & (size1 - 1) == 0:  # old tree is one perfect node: the verifier already has it
        path = [root1, *path]
    first, second = _chain_consistency(size1, size2, path)
    _match("old root", first, root1)
    _match("new root", second, root2)


def _chain_consistency(size1: int, size2: int, path: list[bytes]) -> tuple[bytes, bytes]:
    """The RFC 9162 §2.1.4.2 loop: rebuild both roots from a proof whose first hash is the seed."""
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:  # skip the levels where the old tree's last node is already complete
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof has more elements than the path to the root")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)  # right siblings exist only in the new tree
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("proof has fewer elements than the path to the root")
    return fr, sr


# --------------------------------------------------------------------------- subtree verifiers


def verify_subtree_inclusion(
    leaf_hash: BytesLike,
    index: int,
    start: int,
    end: int,
    proof: Sequence[BytesLike],
    root: BytesLike,
) -> None:
    """Check that leaf `index` is in the subtree [start, end) whose hash is `root`.

    transparency-dev VerifySubtreeInclusion: a valid subtree, start <= index < end, then an
    ordinary inclusion proof of index - start in a tree of end - start leaves.
    """
    start, end, index = _uint("start", start), _uint("end", end), _uint("index", index)
    if not _is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a valid subtree")
    if not start <= index < end:
        raise ProofError(f"index {index} is outside the subtree [{start}, {end})")
    verify_inclusion(leaf_hash, index - start, end - start, proof, root)


def verify_subtree_consistency(
    start: int,
    end: int,
    size: int,
    subtree_root: BytesLike,
    tree_root: BytesLike,
    proof: Sequence[BytesLike],
) -> None:
    """Check that subtree [start, end) with hash `subtree_root` is part of the tree (size, root).

    transparency-dev VerifySubtreeConsistency (argument order as in its test vectors: start, end,
    size, root1 = subtree root, root2 = tree root). An empty subtree only needs an empty proof and
    the empty-tree hash: it says nothing about the tree, so `tree_root` is not compared (this is
    what the vector generator's "subtree is empty" probes require).
    """
    start, end, size = _uint("start", start), _uint("end", end), _uint("size", size)
    sub_root, root, path = (
        _bytes("subtree_root", subtree_root),
        _bytes("tree_root", tree_root),
        _proof(proof),
    )
    if not _is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a valid subtree")
    if end > size:
        raise ProofError(f"subtree end {end} > tree size {size}")
    if start == end:
        if path:
            raise ProofError("an empty subtree needs an empty proof")
        _match("empty subtree root", sub_root, EMPTY_ROOT)
        return
    if start == 0 and end == size:
        if path:
            raise ProofError("the subtree is the whole tree, but the proof is not empty")
        _match("root", sub_root, root)
        return
    if not path:
        raise ProofError("empty proof")
    _match("tree root", _root_from_subtree_consistency(start, end, size, path, sub_root), root)


def _root_from_subtree_consistency(
    start: int, end: int, size: int, proof: list[bytes], sub_root: bytes
) -> bytes:
    """Port of transparency-dev rootFromSubtreeConsistencyProof; checks `sub_root` on the way."""
    if end == size:
        # Flush with the right edge: only the left siblings of the subtree's ancestors are needed.
        level = ((end - 1) ^ start).bit_length()
        if len(proof) != (start >> level).bit_count():
            raise ProofError(f"wrong proof size {len(proof)}")
        return _chain_border_right(sub_root, proof)
    fork = ((end - 1) ^ (size - 1)).bit_length()  # where paths to end-1 and size-1 part
    border = ((end - 1) >> fork).bit_count()
    shift = _trailing_zeros(end - start)  # height of the rightmost perfect node inside [start, end)
    inner = fork - shift
    # A perfect subtree is its own seed (the verifier knows its hash); otherwise the proof leads
    # with the rightmost perfect node inside the subtree.
    perfect = end - start == 1 << shift
    seed, rest = (sub_root, proof) if perfect else (proof[0], proof[1:])
    if len(rest) != inner + border:
        raise ProofError(f"wrong proof size {len(proof)}")
    mask = (end - 1) >> shift
    if not perfect:
        sub_inner, sub_border = _decomp_subtree_proof(start, end, size, border, rest)
        rebuilt = _chain_border_right(_chain_inner_right(seed, sub_inner, mask), sub_border)
        _match("subtree root", rebuilt, sub_root)
    return _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])


def _decomp_subtree_proof(
    start: int, end: int, size: int, border: int, proof: list[bytes]
) -> tuple[list[bytes], list[bytes]]:
    """The slices of `proof` that rebuild the [start, end) root (transparency-dev)."""
    height = ((end - 1) ^ start).bit_length()
    fork = ((end - 1) ^ (size - 1)).bit_length()
    shift = _trailing_zeros(end - start)
    sub_inner = min(height, fork) - shift
    inner = fork - shift
    sub_border = max(0, border - ((end - 1) >> height).bit_count())
    return proof[:sub_inner], proof[inner : inner + sub_border]


def _chain_inner(seed: bytes, proof: list[bytes], index: int) -> bytes:
    """Hash up from node `index`, taking each sibling from the side its index bit says."""
    for i, sibling in enumerate(proof):
        seed = node_hash(seed, sibling) if (index >> i) & 1 == 0 else node_hash(sibling, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: list[bytes], index: int) -> bytes:
    """Like `_chain_inner`, but only left siblings: the same node in the smaller (older) tree."""
    for i, sibling in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(sibling, seed)
    return seed


def _chain_border_right(seed: bytes, proof: list[bytes]) -> bytes:
    """Hash up the right border, where every sibling is on the left."""
    for sibling in proof:
        seed = node_hash(sibling, seed)
    return seed
