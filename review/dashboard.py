"""The overview's figures: messages in and out per day, open flags by policy, review
throughput. Each is one grouped query over an indexed range."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from messaging.models import Message
from messaging.summaries import ANNOTATION_TYPES
from review.models import Flag, ReviewDecision

DAYS = 30
CHART_HEIGHT = 120


@dataclass
class Day:
    day: date
    inbound: int
    outbound: int
    # Bar geometry for the server-drawn SVG chart (no script, no inline style: the CSP allows it)
    x: int = 0
    in_y: int = 0
    in_h: int = 0
    out_y: int = 0
    out_h: int = 0


@dataclass
class Dashboard:
    days: list[Day]
    peak: int
    open_flags: list[tuple[str, int]]
    decisions: list[tuple[str, int]]
    decided_week: int
    raised_week: int


def _since(days: int) -> datetime:
    return timezone.make_aware(
        datetime.combine(timezone.localdate() - timedelta(days - 1), time.min)
    )


def message_days(days: int = DAYS) -> list[Day]:
    counts = (
        Message.objects.filter(sent_at__gte=_since(days))
        .exclude(type__in=ANNOTATION_TYPES)
        .annotate(day=TruncDate("sent_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(
            inbound=Count("id", filter=Q(direction="in")),
            outbound=Count("id", filter=Q(direction="out")),
        )
    )
    by_day = {row["day"]: row for row in counts}
    first = timezone.localdate() - timedelta(days - 1)
    out = []
    for offset in range(days):
        day = first + timedelta(offset)
        row = by_day.get(day)
        out.append(Day(day, row["inbound"] if row else 0, row["outbound"] if row else 0))
    return out


def _geometry(days: list[Day]) -> int:
    peak = max([d.inbound + d.outbound for d in days] + [1])
    for index, d in enumerate(days):
        d.x = index * 20
        d.in_h = round(CHART_HEIGHT * d.inbound / peak)
        d.out_h = round(CHART_HEIGHT * d.outbound / peak)
        d.in_y = CHART_HEIGHT - d.in_h
        d.out_y = d.in_y - d.out_h
    return peak


def dashboard() -> Dashboard:
    days = message_days()
    peak = _geometry(days)
    open_states = [Flag.State.OPEN, Flag.State.ESCALATED]
    open_flags = [
        (
            row["lexicon_policy__name"] or row["sampling_draw__policy__name"] or "raised by hand",
            row["n"],
        )
        for row in Flag.objects.filter(state__in=open_states)
        .values("lexicon_policy__name", "sampling_draw__policy__name")
        .annotate(n=Count("id"))
        .order_by("-n")
    ]
    week = timezone.now() - timedelta(days=7)
    decisions = [
        (ReviewDecision.Outcome(row["outcome"]).label, row["n"])
        for row in ReviewDecision.objects.filter(decided_at__gte=week)
        .values("outcome")
        .annotate(n=Count("id"))
        .order_by("outcome")
    ]
    return Dashboard(
        days=days,
        peak=peak,
        open_flags=open_flags,
        decisions=decisions,
        decided_week=sum(n for _, n in decisions),
        raised_week=Flag.objects.filter(raised_at__gte=week).count(),
    )
