"""archive.merkle: transparency-dev vectors, generated proofs and hypothesis properties."""

import base64
import functools
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.merkle import (
    EMPTY_ROOT,
    CompactRange,
    InMemoryTree,
    ProofError,
    consistency_proof,
    from_perfect_subtrees,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_hash,
    root_from_inclusion_proof,
    subtree_consistency_proof,
    subtree_inclusion_proof,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

VECTORS = Path(__file__).parent / "rfc6962_vectors"
# Every folder of the copied testdata and its file count: a missing or partial folder fails.
EXPECTED_FOLDERS = {
    "consistency/0": 1,
    "consistency/1": 21,
    "consistency/2": 21,
    "consistency/3": 20,
    "consistency/4": 21,
    "consistency/additional": 14,
    "inclusion/0": 13,
    "inclusion/1": 18,
    "inclusion/2": 18,
    "inclusion/3": 15,
    "inclusion/4": 18,
    "inclusion/additional/0": 3,
    "inclusion/additional/1": 3,
    "inclusion/additional/2": 3,
    "inclusion/additional/3": 3,
    "inclusion/single-entry": 4,
    "subtreeconsistency/0": 1,
    "subtreeconsistency/1": 22,
    "subtreeconsistency/2": 22,
    "subtreeconsistency/3": 21,
    "subtreeconsistency/4": 22,
    "subtreeconsistency/additional": 30,
    "subtreeinclusion/0": 26,
    "subtreeinclusion/1": 36,
    "subtreeinclusion/2": 36,
    "subtreeinclusion/3": 30,
    "subtreeinclusion/4": 36,
    "subtreeinclusion/additional/0": 6,
    "subtreeinclusion/additional/1": 6,
    "subtreeinclusion/additional/2": 6,
    "subtreeinclusion/additional/3": 6,
    "subtreeinclusion/errors": 8,
    "subtreeinclusion/single-entry": 8,
}
VECTOR_FILES = sorted(VECTORS.rglob("*.json"))

# RFC 6962 reference leaves and the MTH of their first 1..8 (as in transparency-dev's testdata).
RFC6962_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
RFC6962_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- vector loading


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _run_vector(kind: str, v: dict[str, Any]) -> None:
    """Call the verifier the vector's folder is for, with its fields decoded."""
    proof = [_b64(p) for p in v["proof"] or []]  # Go writes a nil proof as null
    if kind == "inclusion":
        verify_inclusion(_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof, _b64(v["root"]))
    elif kind == "consistency":
        verify_consistency(v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"]), proof)
    elif kind == "subtreeinclusion":
        verify_subtree_inclusion(
            _b64(v["leafHash"]), v["leafIdx"], v["start"], v["end"], proof, _b64(v["root"])
        )
    else:
        assert kind == "subtreeconsistency"
        verify_subtree_consistency(
            v["start"], v["end"], v["size"], _b64(v["root1"]), _b64(v["root2"]), proof
        )


def test_it_finds_every_vector_folder() -> None:
    found = Counter(str(p.parent.relative_to(VECTORS)) for p in VECTOR_FILES)
    assert dict(found) == EXPECTED_FOLDERS
    assert len(VECTOR_FILES) == 518
    assert (VECTORS / "SOURCES.md").is_file()


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: str(p.relative_to(VECTORS)))
def test_it_agrees_with_the_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    kind = path.relative_to(VECTORS).parts[0]
    if vector["wantErr"]:
        with pytest.raises(ProofError):
            _run_vector(kind, vector)
    else:
        _run_vector(kind, vector)


# --------------------------------------------------------------------------- fixtures


@functools.cache
def _leaves(n: int) -> tuple[bytes, ...]:
    return tuple(leaf_hash(i.to_bytes(4, "big")) for i in range(n))


@functools.cache
def _tree(n: int) -> InMemoryTree:
    return InMemoryTree(_leaves(n))


def _stored_source(n: int) -> Callable[[int, int], bytes]:
    """A source built like the ledger's: leaf hashes plus the nodes CompactRange.append returned."""
    store = {(0, i): h for i, h in enumerate(_leaves(n))}
    compact = CompactRange()
    store.update(((lvl, idx), h) for lvl, idx, h in compact.extend(_leaves(n)))

    def perfect(start: int, end: int) -> bytes:
        level = (end - start).bit_length() - 1
        return store[level, start >> level]

    return from_perfect_subtrees(perfect)


def _is_perfect(start: int, end: int) -> bool:
    """One aligned node: a power-of-two number of leaves starting at a multiple of it."""
    size = end - start
    return size > 0 and size & (size - 1) == 0 and start % size == 0


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    return data[: bit // 8] + bytes([data[bit // 8] ^ (1 << bit % 8)]) + data[bit // 8 + 1 :]


@st.composite
def _inclusion_cases(draw: st.DrawFn) -> tuple[int, int, int]:
    n = draw(st.integers(1, 300))
    size = draw(st.integers(1, n))
    return n, draw(st.integers(0, size - 1)), size


@st.composite
def _size_pairs(draw: st.DrawFn) -> tuple[int, int, int]:
    n = draw(st.integers(1, 300))
    size2 = draw(st.integers(1, n))
    return n, draw(st.integers(1, size2)), size2


@st.composite
def _subtrees(draw: st.DrawFn) -> tuple[int, int, int]:
    """(start, end, size): a non-empty valid subtree of a tree of `size` leaves."""
    size = draw(st.integers(1, 300))
    length = draw(st.integers(1, size))
    step = 1 << (length - 1).bit_length()  # start is a multiple of bit_ceil(length)
    start = step * draw(st.integers(0, (size - length) // step))
    return start, start + length, size


# --------------------------------------------------------------------------- hashing and roots


def test_it_hashes_the_empty_tree() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert CompactRange().root() == EMPTY_ROOT == InMemoryTree([]).root()


def test_it_separates_leaf_and_node_domains() -> None:
    assert leaf_hash(b"ab") != node_hash(b"a", b"b")


@pytest.mark.parametrize("size", range(1, 9))
def test_it_matches_the_rfc6962_reference_roots(size: int) -> None:
    tree = InMemoryTree(leaf_hash(d) for d in RFC6962_LEAVES)
    assert tree.root(size).hex() == RFC6962_ROOTS[size - 1]


def test_it_gives_the_size_8_root_in_the_vectors() -> None:
    compact = CompactRange()
    compact.extend(leaf_hash(d) for d in RFC6962_LEAVES)
    assert compact.root() == _b64("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=")


@given(st.integers(0, 300))
@PROPS
def test_it_keeps_compact_roots_equal_to_in_memory_roots(n: int) -> None:
    compact = CompactRange()
    for size, leaf in enumerate(_leaves(n), start=1):
        compact.append(leaf)
        assert compact.root() == _tree(n).root(size)
    assert compact.size == n and len(compact.hashes) == n.bit_count()


@given(st.integers(0, 300))
@PROPS
def test_it_returns_exactly_the_completed_nodes(n: int) -> None:
    nodes = CompactRange().extend(_leaves(n))
    want = {(lvl, idx) for lvl in range(1, n.bit_length()) for idx in range(n >> lvl)}
    assert {(lvl, idx) for lvl, idx, _ in nodes} == want and len(nodes) == len(want)
    for level, index, digest in nodes:
        assert digest == _tree(n).subtree(index << level, (index + 1) << level)


@given(st.integers(0, 300), st.integers(0, 40))
@PROPS
def test_it_round_trips_through_bytes(n: int, more: int) -> None:
    compact = CompactRange()
    compact.extend(_leaves(n))
    copy = CompactRange.from_bytes(n, compact.to_bytes())
    assert copy.hashes == compact.hashes and copy.root() == compact.root()
    extra = [leaf_hash(b"more" + bytes([i])) for i in range(more)]
    assert copy.extend(extra) == compact.extend(extra) and copy.root() == compact.root()


@pytest.mark.parametrize(
    ("size", "blob"), [(3, bytes(32)), (1, bytes(33)), (-1, b""), (0, bytes(32))]
)
def test_it_refuses_a_blob_of_the_wrong_shape(size: int, blob: bytes) -> None:
    with pytest.raises(ValueError, match=r"size|hashes"):
        CompactRange.from_bytes(size, blob)


def test_it_refuses_a_leaf_hash_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(b"short")


# --------------------------------------------------------------------------- hash sources


@given(
    st.integers(1, 300).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(0, n))
    )
)
@PROPS
def test_it_hashes_any_range_from_perfect_subtrees(case: tuple[int, int, int]) -> None:
    n, a, b = case
    start, end = min(a, b), max(a, b)
    asked: list[tuple[int, int]] = []

    def perfect(lo: int, hi: int) -> bytes:
        asked.append((lo, hi))
        return _tree(n).subtree(lo, hi)

    assert range_hash(start, end, perfect) == _tree(n).subtree(start, end)
    assert all(_is_perfect(lo, hi) for lo, hi in asked)


@given(_size_pairs())
@PROPS
def test_it_asks_the_source_for_perfect_or_right_edge_ranges(case: tuple[int, int, int]) -> None:
    n, size1, size2 = case
    asked: list[tuple[int, int]] = []

    def source(lo: int, hi: int) -> bytes:
        asked.append((lo, hi))
        return _tree(n).subtree(lo, hi)

    inclusion_proof(size1 - 1, size2, source)
    consistency_proof(size1, size2, source)
    assert all(_is_perfect(lo, hi) or hi == size2 for lo, hi in asked)


# --------------------------------------------------------------------------- generated proofs


@given(_inclusion_cases())
@PROPS
def test_it_proves_a_leaf_against_a_later_root(case: tuple[int, int, int]) -> None:
    n, index, size = case
    tree = _tree(n)
    for source in (tree.subtree, _stored_source(size)):
        proof = inclusion_proof(index, size, source)
        verify_inclusion(_leaves(n)[index], index, size, proof, tree.root(size))


@given(_size_pairs())
@PROPS
def test_it_proves_consistency_between_two_sizes(case: tuple[int, int, int]) -> None:
    n, size1, size2 = case
    tree = _tree(n)
    for source in (tree.subtree, _stored_source(size2)):
        proof = consistency_proof(size1, size2, source)
        verify_consistency(size1, size2, tree.root(size1), tree.root(size2), proof)


@given(_inclusion_cases(), st.integers(0, 10_000), st.integers(0, 255))
@PROPS
def test_it_rejects_any_flipped_bit_in_an_inclusion_claim(
    case: tuple[int, int, int], pick: int, bit: int
) -> None:
    n, index, size = case
    proof = inclusion_proof(index, size, _tree(n).subtree)
    parts = [_leaves(n)[index], _tree(n).root(size), *proof]
    parts[pick % len(parts)] = _flip(parts[pick % len(parts)], bit)
    with pytest.raises(ProofError):
        verify_inclusion(parts[0], index, size, parts[2:], parts[1])


@given(_size_pairs(), st.integers(0, 10_000), st.integers(0, 255))
@PROPS
def test_it_rejects_any_flipped_bit_in_a_consistency_claim(
    case: tuple[int, int, int], pick: int, bit: int
) -> None:
    n, size1, size2 = case
    proof = consistency_proof(size1, size2, _tree(n).subtree)
    parts = [_tree(n).root(size1), _tree(n).root(size2), *proof]
    parts[pick % len(parts)] = _flip(parts[pick % len(parts)], bit)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, parts[0], parts[1], parts[2:])


@given(_subtrees(), st.integers(0, 10_000))
@PROPS
def test_it_proves_a_leaf_inside_a_subtree(case: tuple[int, int, int], pick: int) -> None:
    start, end, size = case
    index = start + pick % (end - start)
    proof = subtree_inclusion_proof(index, start, end, _stored_source(size))
    sub_root = _tree(size).subtree(start, end)
    verify_subtree_inclusion(_leaves(size)[index], index, start, end, proof, sub_root)


@given(_subtrees())
@PROPS
def test_it_proves_a_subtree_consistent_with_its_tree(case: tuple[int, int, int]) -> None:
    start, end, size = case
    proof = subtree_consistency_proof(start, end, size, _stored_source(size))
    verify_subtree_consistency(
        start, end, size, _tree(size).subtree(start, end), _tree(size).root(), proof
    )


@given(_subtrees(), st.integers(0, 10_000), st.integers(0, 255))
@PROPS
def test_it_rejects_any_flipped_bit_in_a_subtree_claim(
    case: tuple[int, int, int], pick: int, bit: int
) -> None:
    start, end, size = case
    proof = subtree_consistency_proof(start, end, size, _tree(size).subtree)
    parts = [_tree(size).subtree(start, end), _tree(size).root(), *proof]
    parts[pick % len(parts)] = _flip(parts[pick % len(parts)], bit)
    with pytest.raises(ProofError):
        verify_subtree_consistency(start, end, size, parts[0], parts[1], parts[2:])


def _tampered(proof: list[bytes], extra: bytes) -> list[list[bytes]]:
    """The proof with an element added at either end, or its last one removed."""
    return [[*proof, extra], [extra, *proof]] + ([proof[:-1]] if proof else [])


@given(_subtrees())
@PROPS
def test_it_rejects_added_or_removed_proof_elements(case: tuple[int, int, int]) -> None:
    start, end, size = case
    tree = _tree(size)
    sub_root, root = tree.subtree(start, end), tree.root()
    for bad in _tampered(inclusion_proof(end - 1, size, tree.subtree), root):
        with pytest.raises(ProofError):
            verify_inclusion(_leaves(size)[end - 1], end - 1, size, bad, root)
    for bad in _tampered(consistency_proof(end, size, tree.subtree), root):
        with pytest.raises(ProofError):
            verify_consistency(end, size, tree.root(end), root, bad)
    for bad in _tampered(subtree_consistency_proof(start, end, size, tree.subtree), root):
        with pytest.raises(ProofError):
            verify_subtree_consistency(start, end, size, sub_root, root, bad)


@given(_subtrees(), st.integers(-3, 3), st.integers(-3, 3))
@PROPS
def test_it_rejects_a_subtree_proof_for_other_bounds(
    case: tuple[int, int, int], d_start: int, d_end: int
) -> None:
    start, end, size = case
    proof = subtree_consistency_proof(start, end, size, _tree(size).subtree)
    moved = (start + d_start, end + d_end)
    if moved == (start, end) or min(moved) < 0 or moved[0] >= moved[1]:
        return
    with pytest.raises(ProofError):
        verify_subtree_consistency(
            *moved, size, _tree(size).subtree(start, end), _tree(size).root(), proof
        )


def test_it_gives_an_empty_consistency_proof_for_equal_sizes() -> None:
    assert consistency_proof(5, 5, _tree(5).subtree) == []


@pytest.mark.parametrize(("old", "new"), [(0, 3), (4, 3), (-1, 2)])
def test_it_refuses_to_generate_a_meaningless_consistency_proof(old: int, new: int) -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(old, new, _tree(4).subtree)


# --------------------------------------------------------------------------- malformed input


def _good_inclusion() -> dict[str, Any]:
    proof = inclusion_proof(2, 5, _tree(5).subtree)
    return {
        "leaf_hash": _leaves(5)[2],
        "index": 2,
        "tree_size": 5,
        "proof": proof,
        "root": _tree(5).root(),
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("index", -1),
        ("index", True),
        ("index", "2"),
        ("index", 2.0),
        ("tree_size", 2**64),
        ("leaf_hash", None),
        ("leaf_hash", "ab" * 16),
        ("root", None),
        ("proof", None),
        ("proof", "not a list"),
        ("proof", [b"x" * 31, b"y" * 32, b"z" * 32]),
        ("proof", [None, None, None]),
    ],
)
def test_it_raises_proof_error_for_malformed_inclusion_input(field: str, value: object) -> None:
    args = _good_inclusion() | {field: value}
    with pytest.raises(ProofError):
        verify_inclusion(**args)


def test_it_accepts_database_byte_types() -> None:
    args = _good_inclusion()
    args["proof"] = [memoryview(h) for h in args["proof"]]
    verify_inclusion(args["leaf_hash"], 2, 5, args["proof"], bytearray(args["root"]))


def test_it_computes_the_root_an_inclusion_proof_implies() -> None:
    args = _good_inclusion()
    del args["root"]
    assert root_from_inclusion_proof(**args) == _tree(5).root()


@pytest.mark.parametrize(
    "args",
    [
        (-1, 3, EMPTY_ROOT, EMPTY_ROOT, []),
        (1, 2**64, EMPTY_ROOT, EMPTY_ROOT, []),
        (1, 2, None, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 2, EMPTY_ROOT, EMPTY_ROOT, [b""]),
        (3, 3, EMPTY_ROOT, EMPTY_ROOT, (None,)),
    ],
)
def test_it_raises_proof_error_for_malformed_consistency_input(args: tuple[Any, ...]) -> None:
    with pytest.raises(ProofError):
        verify_consistency(*args)


@pytest.mark.parametrize(
    "args",
    [
        (2, 1, 4, EMPTY_ROOT, EMPTY_ROOT, []),
        (0, 5, 2**64 + 1, EMPTY_ROOT, EMPTY_ROOT, []),
        (2, 2, 1, EMPTY_ROOT, EMPTY_ROOT, []),
        (0, 1, 2, EMPTY_ROOT, EMPTY_ROOT, [1]),
    ],
)
def test_it_raises_proof_error_for_malformed_subtree_input(args: tuple[Any, ...]) -> None:
    with pytest.raises(ProofError):
        verify_subtree_consistency(*args)
