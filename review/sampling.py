"""Sampling policies: each period, a share of the conversations active in it, drawn at random
for review (FINRA 3110 reviews by risk-based sample as well as by lexicon).

A draw covers one complete period and is made once (a unique constraint): the daily schedule
can run any number of times. The draw uses the operating system's random source, and records
the population it drew from beside the flags it raised.
"""

import math
import secrets
from datetime import date, datetime, time, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging.models import Message
from messaging.summaries import ANNOTATION_TYPES
from review.models import Flag, SamplingDraw, SamplingPolicy

Period = SamplingPolicy.Period


def last_complete_period(period: str, today: date) -> tuple[date, date]:
    """[start, end) of the latest whole day, week (Monday to Sunday) or month before today."""
    if period == Period.DAY:
        return today - timedelta(days=1), today
    if period == Period.WEEK:
        this_monday = today - timedelta(days=today.weekday())
        return this_monday - timedelta(days=7), this_monday
    first = today.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1), first


def draw_size(population: int, percent: float) -> int:
    """At least one conversation from any non-empty population; never more than there are."""
    if population == 0:
        return 0
    return min(population, max(1, math.ceil(population * percent / 100)))


def draw(policy: SamplingPolicy, today: date) -> SamplingDraw | None:
    """Make the draw for the policy's last complete period, unless it was made already."""
    start, end = last_complete_period(policy.period, today)
    if SamplingDraw.objects.filter(policy=policy, period_start=start).exists():
        return None
    aware = [timezone.make_aware(datetime.combine(d, time.min)) for d in (start, end)]
    active = Message.objects.filter(sent_at__gte=aware[0], sent_at__lt=aware[1]).exclude(
        type__in=ANNOTATION_TYPES
    )
    channels = list(policy.channels.values_list("pk", flat=True))
    if channels:
        active = active.filter(channel_id__in=channels)
    population = sorted(set(active.values_list("conversation_id", flat=True)))
    chosen = secrets.SystemRandom().sample(
        population, draw_size(len(population), float(policy.percent))
    )
    try:
        with transaction.atomic():
            made = SamplingDraw.objects.create(
                policy=policy,
                period_start=start,
                period_end=end,
                population=len(population),
                drawn=len(chosen),
            )
            Flag.objects.bulk_create(
                Flag(conversation_id=pk, source=Flag.Source.SAMPLING, sampling_draw=made)
                for pk in chosen
            )
    except IntegrityError:  # another worker drew this period first
        return None
    return made


def draw_due(today: date | None = None) -> int:
    """Every active policy's due draw; returns how many conversations were drawn."""
    today = today or timezone.localdate()
    made = [draw(p, today) for p in SamplingPolicy.objects.filter(active=True)]
    return sum(d.drawn for d in made if d is not None)
