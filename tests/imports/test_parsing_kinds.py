"""The fast path of kinds.classify() gives what the full checks give."""

from hypothesis import given, settings
from hypothesis import strategies as st

from imports.parsing import kinds


def test_it_knows_every_character_that_casefolds_to_an_m() -> None:
    # classify() tests line[0] in "Mm" before casefolding the line for "missed "
    assert [c for c in map(chr, range(0x110000)) if c.casefold()[:1] == "m"] == ["M", "m"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=20))
def test_it_classifies_alike_with_its_pairs_remembered_or_not(lines: list[str]) -> None:
    kinds._PLAIN_PAIRS.clear()
    first = [kinds.classify("Alice", line, "android") for line in lines]
    again = [kinds.classify("Alice", line, "android") for line in lines]  # the pairs remembered
    assert first == again
    assert all(pair.casefold()[-2:] not in kinds._TAILS for pair in kinds._PLAIN_PAIRS)
