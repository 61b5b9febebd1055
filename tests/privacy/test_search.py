"""find_boundary returns the exact boundary whatever the proposer says."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dpsweep.privacy.search import find_boundary


@settings(max_examples=200, deadline=None)
@given(hi=st.integers(1, 10_000), data=st.data(),
       proposer=st.sampled_from(["none", "exact", "low", "high", "random"]))
def test_finds_the_boundary_of_a_monotone_test(hi, data, proposer):
    boundary = data.draw(st.integers(0, hi - 1))
    calls: list[int] = []

    def is_low(i: int) -> bool:
        assert 0 < i < hi, "sentinels are never evaluated"
        calls.append(i)
        return i <= boundary

    guesses = {"exact": lambda lo, h: boundary, "low": lambda lo, h: -5, "high": lambda lo, h: 10**9,
               "random": lambda lo, h: data.draw(st.integers(-10, hi + 10))}
    found = find_boundary(is_low, lo=0, hi=hi, propose=guesses.get(proposer))
    assert found == boundary
    assert len(calls) <= 8 + hi.bit_length() + 6  # model tries, then (geometric) bisection
    if proposer == "exact":
        assert len(calls) <= 2


def test_non_monotone_test_still_gives_a_local_boundary():
    pattern = {i: i <= 10 or 20 <= i <= 25 for i in range(1, 40)}
    found = find_boundary(pattern.__getitem__, lo=0, hi=40)
    assert pattern.get(found, True) and not pattern.get(found + 1, False)
