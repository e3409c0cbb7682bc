"""Sampling: a share of each period's conversations drawn at random, once per period."""

from datetime import date, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from messaging.models import Message
from review import sampling
from review.models import Flag, SamplingDraw, SamplingPolicy


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    st.sampled_from(["day", "week", "month"]),
)
def test_it_draws_from_the_last_whole_period_before_today(today: date, period: str) -> None:
    start, end = sampling.last_complete_period(period, today)
    assert start < end <= today
    assert end + {"day": timedelta(1), "week": timedelta(7), "month": timedelta(31)}[period] > today
    if period == "week":
        assert start.weekday() == 0 and (end - start).days == 7
    if period == "month":
        assert start.day == 1 and end.day == 1


@given(st.integers(0, 10_000), st.decimals(min_value="0.01", max_value="100", places=2))
def test_it_draws_at_least_one_and_never_more_than_there_are(population: int, percent: Any) -> None:
    size = sampling.draw_size(population, float(percent))
    assert 0 <= size <= population and (size >= 1) == (population > 0)


def test_it_draws_once_per_period_and_raises_flags(world: Any) -> None:
    policy = SamplingPolicy.objects.create(name="Weekly 50%", percent=50, period="day")
    day = Message.objects.get(wamid="wamid.demo-0-0").sent_at.date()
    made = sampling.draw(policy, day + timedelta(days=1))
    assert made is not None and made.population == 4 and made.drawn == 2
    assert Flag.objects.filter(source="sampling", sampling_draw=made).count() == 2
    assert sampling.draw(policy, day + timedelta(days=1)) is None
    assert SamplingDraw.objects.count() == 1
