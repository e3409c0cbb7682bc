"""The first pass over an export: its header shape and its day/month order.

The shape is the most frequent one among all candidate header lines (shared doc, section 5.3.1);
lines of other shapes are counted, and the parser keeps them as body text flagged "other-shape".
The order is decided over every header date of that shape (section 5.3.2):

(a) a reading that gives an impossible date (a month of 16, 31/02) is rejected, so a single
    value > 12 settles it;
(b) else the reading with *clearly* fewer backward steps between consecutive headers wins:
    at most half as many, and at least 2 fewer (exports do go back in time now and then);
(c) else the order stays None and `order_evidence` says why; the importer asks the uploader.

Year-first dates that stay undecided are read year-month-day: no region writes year-day-month.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, groupby
from operator import attrgetter
from typing import Any

from imports.parsing.blocks import Batch, batches, line_at, part, scan
from imports.parsing.headers import (
    RawDate,
    Shape,
    match_header,
    raw_date,
    shape_of,
    skeleton_of,
)
from imports.parsing.source import ExportError, ExportFile

SNIFF_NON_BLANK = 1000
_ORDERS = {  # (year position, day comes first) -> order
    (2, True): "dmy",
    (2, False): "mdy",
    (0, True): "ydm",
    (0, False): "ymd",
    (1, True): "dym",
    (1, False): "myd",
}
ORDERS = tuple(_ORDERS.values())


@dataclass(frozen=True)
class Detected:
    """The first pass over the whole file."""

    platform: str  # "android" | "ios" | "legacy"
    shape: str  # human text, e.g. "[dd/mm/yyyy, HH:MM:SS]"
    date_order: str | None  # "dmy" | "mdy" | "ymd" (| "ydm" | "dym" | "myd") | None
    order_evidence: str
    clock: str  # "24h" | "12h"
    has_seconds: bool
    calendar: str  # "gregorian" | "buddhist" | "japanese"
    header_lines: int  # lines that matched the chosen shape
    lines: int  # lines in the file
    unmatched_shapes: int  # candidate header lines of another shape (mixed files)
    # Additions to the contract (parse() needs the first; the rest are for the import report):
    header_shape: Shape | None = None
    has_year: bool = True  # False for `18 Mar 12:14 - ` headers: parse() needs first_year
    other_shapes: tuple[tuple[str, int, int], ...] = ()  # (shape text, lines, first line)
    first_header_line: int = 1


@dataclass
class _Seen:
    """What the first pass keeps per shape: counts and each distinct date once."""

    shape: Shape
    first_line: int
    count: int = 0
    # by the date groups, or by the date's text in the header (in batches: see _take())
    dates: dict[tuple[str, ...] | str, RawDate | None] = field(default_factory=dict)
    date_lines: dict[RawDate, int] = field(default_factory=dict)
    steps: list[RawDate] = field(default_factory=list)  # header dates, consecutive repeats merged
    groups: tuple[str, ...] = ()  # the match groups holding the date

    def __post_init__(self) -> None:
        self.groups = date_groups(self.shape)


def date_groups(shape: Shape) -> tuple[str, ...]:
    return ("nd", "mon") if shape.kind == "no-year" else ("d1", "d2", "d3")


def detect(export: ExportFile) -> Detected:
    """Read the whole chat text once; raise ExportError when it is not a WhatsApp export."""
    skeletons: dict[str | bytes, _Seen | None] = {}
    seen: dict[Shape, _Seen] = {}
    parts: dict[str | bytes, slice] = {}  # where a skeleton's date is in its header text
    non_blank = 0  # lines before the first header that are neither blank nor headers
    found = False
    lines = 0
    for first, text in export.texts():
        if found:  # the usual case: no preamble left to count, headers taken a batch at a time
            for batch in batches(text, 0, _likeliest(seen)):
                _take(batch, first, text, skeletons, seen, parts)
            lines = first + text.count("\n") - 1
            continue
        gap = 0  # start of the lines not yet counted in non_blank
        for start, _, m, head in scan(text):
            if not found:
                non_blank += _non_blank(text, gap, start)
                if non_blank >= SNIFF_NON_BLANK:
                    raise _not_an_export(export)
                gap = text.index("\n", start) + 1
            key = skeleton_of(head)
            if key in skeletons:
                state = skeletons[key]
            else:
                number = first + text.count("\n", 0, start)
                state = skeletons[key] = _state_for(line_at(text, start), seen, number)
            if state is None:
                continue
            groups = m.group(*state.groups)
            if groups in state.dates:
                day = state.dates[groups]
            else:
                day = state.dates[groups] = raw_date(m, state.shape)
                if day is not None and day not in state.date_lines:  # count lines only then
                    state.date_lines[day] = first + text.count("\n", 0, start)
            if day is None:
                continue
            found = True
            state.count += 1
            steps = state.steps
            if not steps or (steps[-1] is not day and steps[-1] != day):
                steps.append(day)
            break  # found: the rest of the text goes a batch at a time
        if found:
            for batch in batches(text, text.index("\n", start) + 1, _likeliest(seen)):
                _take(batch, first, text, skeletons, seen, parts)
        else:
            non_blank += _non_blank(text, gap, len(text))
            if non_blank >= SNIFF_NON_BLANK:
                raise _not_an_export(export)
        lines = first + text.count("\n") - 1
    if not found:
        raise _not_an_export(export)
    return _verdict(seen, lines)


def _take(
    batch: Batch,
    first: int,
    text: str,
    skeletons: dict[str | bytes, "_Seen | None"],
    seen: dict[Shape, "_Seen"],
    parts: dict[str | bytes, slice],
) -> None:
    """detect()'s loop over the headers of one batch, after the first header was found: the
    same counts, dates, first lines and steps, with the per-header work done by C calls where
    the batch holds one shape (the usual case). Dates are keyed by the date's text in the
    header (`parts`: where it is, per skeleton) rather than by its groups: equal texts, equal
    groups."""
    ms, sk, starts, _, heads = batch
    distinct = dict.fromkeys(sk)  # in the order of first occurrence, as the loop meets them
    lo = 0
    for key in distinct:
        if key not in skeletons:
            lo = sk.index(key, lo)
            start = starts[lo]
            number = first + text.count("\n", 0, start)
            skeletons[key] = _state_for(line_at(text, start), seen, number)
    found = {id(state): state for state in map(skeletons.__getitem__, distinct)}
    if id(None) in found:
        del found[id(None)]
        keep = [skeletons[key] is not None for key in sk]
        ms, starts = list(compress(ms, keep)), list(compress(starts, keep))
        sk, heads = list(compress(sk, keep)), list(compress(heads, keep))
    states = [state for state in found.values() if state is not None]
    if not states:
        return
    if len(states) > 1:  # headers of several shapes: one at a time, as detect() does
        for m, key, start in zip(ms, sk, starts, strict=True):
            each = skeletons[key]
            assert each is not None
            _count([m.group(*each.groups)], [m], [start], each, first, text)
        return
    (state,) = states
    names = state.groups
    lo = 0
    for key in dict.fromkeys(sk):
        if key not in parts:
            lo = sk.index(key, lo)
            parts[key] = part(ms[lo], names[0], names[-1])
    keys = list(map(str.__getitem__, heads, map(parts.__getitem__, sk)))
    _count(keys, ms, starts, state, first, text)


def _count(
    groups: list[Any],  # date keys: group tuples or date texts
    ms: "Sequence[re.Match[str]]",
    starts: list[int],
    state: "_Seen",
    first: int,
    text: str,
) -> None:
    """Headers of one state, in file order (their date groups, matches and line starts)."""
    dates = state.dates
    lo = 0
    nones = []
    for key in dict.fromkeys(groups):
        if key in dates:
            day = dates[key]
        else:
            lo = groups.index(key, lo)
            day = dates[key] = raw_date(ms[lo], state.shape)
            if day is not None and day not in state.date_lines:  # count lines only then
                state.date_lines[day] = first + text.count("\n", 0, starts[lo])
        if day is None:
            nones.append(key)
    state.count += sum(dates[key] is not None for key in groups) if nones else len(groups)
    steps = state.steps
    for key, _ in groupby(groups):  # consecutive repeats merge in steps anyway
        day = dates[key]
        if day is None:
            continue
        if not steps or (steps[-1] is not day and steps[-1] != day):
            steps.append(day)


def _likeliest(seen: dict[Shape, _Seen]) -> Shape | None:
    """The shape counted most so far: batches() finds its headers faster (and the rest alike)."""
    return max(seen.values(), key=attrgetter("count")).shape if seen else None


def _non_blank(text: str, start: int, end: int) -> int:
    return sum(1 for line in text[start:end].split("\n") if line.strip())


def _state_for(line: str, seen: dict[Shape, _Seen], number: int) -> _Seen | None:
    m = match_header(line)  # the line's own match: shapes come from it, as before blocks
    shape = shape_of(m) if m is not None else None
    if shape is None:
        return None
    if shape not in seen:
        seen[shape] = _Seen(shape, number)
    return seen[shape]


def _not_an_export(export: ExportFile) -> ExportError:
    return ExportError(
        export.file_name,
        "not a WhatsApp chat export: no line of the first 1000 looks like a message header",
    )


def _verdict(seen: dict[Shape, _Seen], lines: int) -> Detected:
    counted = [s for s in seen.values() if s.count]
    chosen = max(counted, key=lambda s: (s.count, -s.first_line))
    shape = chosen.shape
    order, evidence = decide_order(shape, chosen)
    others = sorted((s for s in counted if s is not chosen), key=lambda s: s.first_line)
    return Detected(
        platform=shape.platform,
        shape=shape.describe(order),
        date_order=order,
        order_evidence=evidence,
        clock=shape.clock,
        has_seconds=shape.has_seconds,
        calendar=_calendar(shape, chosen),
        header_lines=chosen.count,
        lines=lines,
        unmatched_shapes=sum(s.count for s in others),
        header_shape=shape,
        has_year=shape.kind != "no-year",
        other_shapes=tuple((s.shape.describe(None), s.count, s.first_line) for s in others),
        first_header_line=chosen.first_line,
    )


def _calendar(shape: Shape, seen: _Seen) -> str:
    if shape.calendar == "gregorian" and any(day.buddhist for day in seen.date_lines):
        return "buddhist"  # 4-digit Buddhist Era years written without "BE"
    return shape.calendar


def decide_order(shape: Shape, seen: _Seen) -> tuple[str | None, str]:
    """Section 5.3 (a)-(c) over the distinct dates and the header-to-header steps."""
    if shape.kind == "no-year":
        return "dmy", "the month is written as a name"
    assert shape.year_pos is not None
    name = {df: _ORDERS[(shape.year_pos, df)] for df in (True, False)}
    wrong: dict[bool, str] = {}
    for day_first in (True, False):
        for day, line in seen.date_lines.items():
            if day.resolve(day_first) is None:
                wrong[day_first] = _why_impossible(day, day_first, line)
                break
    if len(wrong) == 2:
        return None, f"no reading gives valid dates: {wrong[True]}; {wrong[False]}"
    if len(wrong) == 1:
        day_first = True not in wrong
        return name[day_first], wrong[not day_first]
    back = {df: _backward_steps(seen.steps, df) for df in (True, False)}
    for day_first in (True, False):
        fewer, more = back[day_first], back[not day_first]
        if fewer * 2 <= more and more - fewer >= 2:
            return name[day_first], (
                f"every day and month <= 12; {name[day_first]} steps back {fewer} time(s) "
                f"between consecutive headers, {name[not day_first]} {more}"
            )
    steps = f"{name[True]} steps back {back[True]} time(s), {name[False]} {back[False]}"
    if shape.year_pos == 0:
        return "ymd", f"year first, every day and month <= 12 ({steps}): no region writes y-d-m"
    return None, f"every day and month <= 12 and {steps}: not clearly fewer"


def _why_impossible(day: RawDate, day_first: bool, line: int) -> str:
    month = day.second if day_first else day.first
    if month > 12:
        position = "second" if day_first else "first"
        return f"a {position} component of {month} (line {line}) cannot be a month"
    d, m = (day.first, day.second) if day_first else (day.second, day.first)
    reading = "day first" if day_first else "month first"
    return f"{d:02d}/{m:02d}/{day.year} read {reading} is impossible (line {line})"


def _backward_steps(steps: list[RawDate], day_first: bool) -> int:
    count = 0
    previous = None
    for day in steps:
        current = day.resolve(day_first)
        if previous is not None and current is not None and current < previous:
            count += 1
        previous = current
    return count
