"""Disposition's batches are slices of about SLICE_SECONDS of the chain head's time
(retention/disposition.py): never smaller than DISPOSITION_BATCH, never more than
MAX_BATCH_FACTOR times it, at most doubling from one batch to the next."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retention import disposition
from retention.disposition import MAX_BATCH_FACTOR, Slices


@given(
    first=st.integers(1, 10_000),
    holds=st.lists(st.floats(1e-4, 100.0), max_size=30),
)
def test_it_keeps_every_batch_between_the_first_size_and_its_ceiling(first, holds):
    slices = Slices(first)
    for held in holds:
        before = slices.size
        slices.held(held, before)
        assert first <= slices.size <= first * MAX_BATCH_FACTOR
        assert slices.size <= 2 * before


def test_it_grows_a_batch_that_held_the_head_briefly():
    slices = Slices(1_000)
    slices.held(disposition.SLICE_SECONDS / 4, 1_000)
    assert slices.size == 2_000


def test_it_shrinks_a_batch_that_held_the_head_too_long_but_not_below_the_first():
    slices = Slices(1_000, size=8_000)
    slices.held(disposition.SLICE_SECONDS * 2, 8_000)
    assert slices.size == 4_000
    slices.held(disposition.SLICE_SECONDS * 100, 4_000)
    assert slices.size == 1_000


def test_it_leaves_the_size_after_a_last_partial_batch():
    slices = Slices(1_000)
    slices.held(disposition.SLICE_SECONDS / 10, 10)
    assert slices.size == 1_000


def test_it_keeps_fixed_batches_when_slicing_is_off(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(disposition, "SLICE_SECONDS", 0.0)
    slices = Slices(1_000)
    slices.held(0.01, 1_000)
    assert slices.size == 1_000
