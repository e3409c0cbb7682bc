"""The second pass: the export split into entries, in file order, streamed.

Only lines of the detected shape start an entry; every other line (another shape included,
flagged "other-shape") continues the current one and is joined with "\\n" exactly as exported.
The author ends at the first ": " after the header (names may hold " - " and ":"); a header with
no ": " after it is an authorless (system) line, `Bob:` an empty body.

Work per line is kept small: a skeleton look-up decides whether a header is of the chosen shape,
dates are resolved once per distinct value and times once per distinct value, and the Entry is
built only when the next header closes it.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from itertools import accumulate, compress, repeat
from operator import methodcaller, sub
from typing import Any, cast

from imports.parsing.blocks import Batch, batches, line_at, part
from imports.parsing.detect import ORDERS, Detected, date_groups
from imports.parsing.headers import (
    Shape,
    body_start,
    clock_of,
    match_header,
    raw_date,
    shadow,
    shape_of,
    skeleton,
)
from imports.parsing.kinds import classify, is_edited
from imports.parsing.source import ExportError, ExportFile

KINDS = (
    "text",
    "system",
    "attachment",
    "media_omitted",
    "deleted",
    "poll",
    "location",
    "contact",
    "call",
    "view_once",
    "empty",
)
FLAGS = (
    "impossible-time",  # "00:08 a. m.", "23:59 PM": kept, read as written, flagged
    "system-guess",  # classified system by structure (iOS body starting with U+200E)
    "other-shape",  # a header line of a different shape inside the body of an entry
    "date-invalid",  # kept for the contract; parse() raises instead (see detect.py)
    "year-inferred",  # addition: `18 Mar 12:14` headers, year from first_year and rollovers
)
_TIMES = methodcaller("group", "H", "M", "S", "ap0", "ap")
_ISO_TIME = time.fromisoformat
_COMBINE = datetime.combine
_CLOCK_CACHE_MAX = 4096  # times repeat on Android (minutes), hardly on iOS (seconds)


@dataclass(frozen=True)
class Entry:
    index: int  # 0-based, file order (the only reliable order; never re-sorted)
    first_line: int
    last_line: int  # 1-based, inclusive, in the chat text
    local_time: datetime  # naive wall-clock time as exported
    has_seconds: bool
    author: str | None  # exactly as exported (marks kept), None = authorless line
    text: str  # body exactly as exported, lines joined with "\n"
    kind: str  # one of KINDS
    attachment: str | None  # referenced file name (directional marks removed), if any
    edited: bool
    flags: tuple[str, ...]  # problems, codes from FLAGS


def split_author(rest: str) -> tuple[str | None, str]:
    """`Alice - Work: hi: there` -> ("Alice - Work", "hi: there"); no ": " -> (None, rest)."""
    cut = rest.find(": ")
    if cut >= 0:
        return rest[:cut], rest[cut + 2 :]
    if rest.endswith(":"):
        return rest[:-1], ""  # `Bob:` with an empty body
    if rest.endswith(":."):
        return rest[:-2], "."  # chat-miner's `John Doe:.` stub, kept as the text "."
    return None, rest


class _Open:
    """The entry being read: raw pieces only, until the next header closes it."""

    __slots__ = ("begin", "first_line", "flags", "parts", "when")

    def __init__(self, number: int, when: datetime, begin: int, flags: list[str] | None) -> None:
        self.first_line = number
        self.when = when
        self.begin = begin  # offset of its text in the current block
        self.parts: list[str] | None = None  # its text in earlier blocks
        self.flags = flags


def parse(
    export: ExportFile, detected: Detected, date_order: str, *, first_year: int | None = None
) -> Iterator[Entry]:
    """Entries in file order. `date_order` is detected.date_order or the uploader's answer;
    only its day/month order is used (the shape fixes where the year is). `first_year` is needed
    for headers without a year. Raises ExportError(line=N) for a date impossible in that order."""
    shape = detected.header_shape
    if shape is None:
        raise ValueError("detected has no header_shape: pass what detect() returned")
    if date_order not in ORDERS:
        raise ValueError(f"date_order must be one of {ORDERS}, not {date_order!r}")
    reader = _Reader(export, shape, date_order.replace("y", "") == "dm", first_year)
    return reader.entries()


class _Reader:
    def __init__(
        self, export: ExportFile, shape: Shape, day_first: bool, first_year: int | None
    ) -> None:
        self.export = export
        self.shape = shape
        self.day_first = day_first
        self.year = first_year
        self.last_month: int | None = None
        self.platform = shape.platform
        self.groups = date_groups(shape)
        self.shapes: dict[str | bytes, Shape | None] = {}
        self.dates: dict[tuple[str, ...], tuple[int, int, int] | None] = {}
        self.clocks: dict[tuple[str | Any, ...], tuple[int, int, int, bool]] = {}
        # _fast(): per skeleton where its date and its time are in the header, per date text
        # its date
        self.parts: dict[str | bytes, slice] = {}
        self.clock_parts: dict[str | bytes, slice | None] = {}
        self.days: dict[str, date] = {}

    def entries(self) -> Iterator[Entry]:
        current: _Open | None = None
        index = 0
        chosen = self.shape
        shapes = self.shapes
        number = 0
        has_seconds = chosen.has_seconds
        platform = self.platform
        for first, text in self.export.texts():
            pos = 0
            if current is None:
                current, pos = self._start(first, text)
                if current is None:
                    continue
            number, counted = first + text.count("\n", 0, pos), pos
            for batch in batches(text, pos, chosen):
                fast = self._fast(batch, text)
                if fast is None:  # other shapes, odd dates or clocks: header by header
                    for m, key, start, body, _ in zip(*batch, strict=True):
                        shape = (
                            shapes[key] if key in shapes else self._shape(key, line_at(text, start))
                        )
                        if shape is chosen:
                            number += text.count("\n", counted, start)
                            counted = start
                            opened = self._open(m, body, number)
                            if opened is not None:
                                yield self._close(current, text, start, index, number - 1)
                                index += 1
                                current = opened
                        elif shape is not None and raw_date(m, shape):
                            current.flags = [*(current.flags or ()), "other-shape"]
                    continue
                starts, bodies, whens = fast
                if not starts:
                    continue
                # Every header opens an entry: their line numbers, then the entries between.
                numbers = list(
                    accumulate(
                        map(text.count, repeat("\n"), [counted, *starts[:-1]], starts),
                        initial=number,
                    )
                )
                del numbers[0]
                yield self._close(current, text, starts[0], index, numbers[0] - 1)
                index += 1
                ends = map(sub, starts[1:], repeat(1))  # each entry's text is text[begin:end]
                closing = zip(bodies, ends, whens, numbers, numbers[1:], strict=False)
                find = text.find
                for begin, end, when, line, after in closing:
                    # _close() inlined (no parts, no flags), on offsets in text: no copy of rest
                    line_end = find("\n", begin, end)
                    cut = find(": ", begin, end if line_end < 0 else line_end)
                    if cut >= 0:
                        author: str | None = text[begin:cut]
                        body_text = text[cut + 2 : end]
                    elif line_end < 0:
                        author, body_text = split_author(text[begin:end])
                    else:
                        author, body_text = split_author(text[begin:line_end])
                        body_text += text[line_end:end]
                    kind, attachment, guess = classify(author, body_text, platform)
                    entry = _new(Entry)
                    _set(
                        entry,
                        "__dict__",
                        {
                            "index": index,
                            "first_line": line,
                            "last_line": after - 1,
                            "local_time": when,
                            "has_seconds": has_seconds,
                            "author": author,
                            "text": body_text,
                            "kind": kind,
                            "attachment": attachment,
                            "edited": ">" in body_text and is_edited(body_text),
                            "flags": ("system-guess",) if guess else (),
                        },
                    )
                    yield entry
                    index += 1
                current = _Open(numbers[-1], whens[-1], bodies[-1], None)
                number, counted = numbers[-1], starts[-1]
            if current.begin < len(text):
                tail = text[current.begin : -1]
                current.parts = [tail] if current.parts is None else [*current.parts, tail]
            current.begin = 0
            number = first + text.count("\n") - 1
        if current is not None:
            yield self._close(current, "", 0, index, number)

    def _fast(self, batch: Batch, text: str) -> tuple[list[int], list[int], list[datetime]] | None:
        """The line starts, body starts and times of the headers of a batch when each header of
        the chosen shape opens an entry with no flag and nothing else in the batch needs work
        (one shape, 24-hour times, dates with a year that are valid): computed by C calls.
        None otherwise; the caller then goes header by header (which raises where needed).
        Dates are read once per distinct date text (where it is in a header is fixed by the
        skeleton), `HH:MM[:SS]` times by time.fromisoformat."""
        shape = self.shape
        if shape.ampm or shape.kind == "no-year":
            return None
        ms, sk, starts, bodies, heads = batch
        shapes = self.shapes
        distinct = dict.fromkeys(sk)
        lo = 0
        for key in distinct:
            if key not in shapes:
                lo = sk.index(key, lo)
                self._shape(key, line_at(text, starts[lo]))
        found = {id(shapes[key]): shapes[key] for key in distinct}
        if id(shape) not in found:
            return ([], [], []) if list(found) == [id(None)] else None
        if len(found) > 1:
            if id(None) not in found or len(found) > 2:
                return None  # a header of another shape flags the entry it is in
            keep = [shapes[key] is shape for key in sk]
            ms, sk = list(compress(ms, keep)), list(compress(sk, keep))
            starts, bodies = list(compress(starts, keep)), list(compress(bodies, keep))
            heads = list(compress(heads, keep))
        parts, clocks = self.parts, self.clock_parts
        lo = 0
        for key in dict.fromkeys(sk):
            if key not in parts:
                lo = sk.index(key, lo)
                m = ms[lo]
                parts[key] = part(m, self.groups[0], self.groups[-1])
                where = part(m, "H", "S" if shape.has_seconds else "M")
                ascii_clock = isinstance(key, bytes) and key[where] in (b"99:99", b"99:99:99")
                clocks[key] = where if ascii_clock else None
        keys = list(map(str.__getitem__, heads, map(parts.__getitem__, sk)))
        days = self.days
        lo = 0
        for key in dict.fromkeys(keys):
            if key not in days:
                lo = keys.index(key, lo)
                raw = raw_date(ms[lo], shape)
                resolved = raw.resolve(self.day_first) if raw is not None else None
                if raw is None or raw.year is None or resolved is None:
                    return None
                days[key] = resolved
        count = len(ms)
        wheres = list(map(clocks.__getitem__, sk))
        if None not in wheres:
            try:
                times = list(
                    map(_ISO_TIME, map(str.__getitem__, heads, cast("list[slice]", wheres)))
                )
            except ValueError:
                return None
        else:
            hours, minutes, seconds, ap0, ap = zip(*map(_TIMES, ms), strict=True)
            if ap0.count(None) != count or ap.count(None) != count:
                return None  # 12-hour times: clock_of() one by one
            if shape.has_seconds:
                if None in seconds:
                    return None
                second = list(map(int, seconds))
            elif seconds.count(None) == count:
                second = [0] * count
            else:
                return None
            hour = list(map(int, hours))
            minute = list(map(int, minutes))
            if max(hour) > 23 or max(minute) > 59 or max(second) > 59:
                return None
            times = list(map(time, hour, minute, second))
        whens = list(map(_COMBINE, map(days.__getitem__, keys), times))
        return starts, bodies, whens

    def _start(self, first: int, text: str) -> tuple[_Open | None, int]:
        """Line by line until the first entry opens: (it, offset of the next line)."""
        offset = 0
        for number, line in enumerate(text.split("\n")[:-1], first):
            offset += len(line) + 1
            m = match_header(line)
            if m is not None and self._shape(skeleton(m), line) is self.shape:
                opened = self._open(m, offset - len(line) - 1 + body_start(line, m), number)
                if opened is not None:
                    return opened, offset
            opened = self._preamble(line, offset - len(line) - 1, number)
            if opened is not None:
                return opened, offset
            if shadow(line).strip():
                raise ExportError(
                    self.export.file_name, "text before the first message header", number
                )
        return None, offset

    def _preamble(self, line: str, start: int, number: int) -> _Open | None:
        """Hand-made mixed files can open with headers of another shape: the first of them
        opens an entry flagged "other-shape" (read in the file's order when that gives a date,
        else in the other one), so nothing before the first real header is lost."""
        m = match_header(line)
        shape = shape_of(m) if m is not None else None
        raw = raw_date(m, shape) if m is not None and shape is not None else None
        if m is None or raw is None:
            return None
        resolved = raw.resolve(self.day_first) or raw.resolve(not self.day_first)
        clock = clock_of(m)
        if resolved is None or clock is None:
            return None
        hour, minute, second, impossible = clock
        when = datetime(resolved.year, resolved.month, resolved.day, hour, minute, second)
        flags = ["other-shape", "impossible-time"] if impossible else ["other-shape"]
        return _Open(number, when, start + body_start(line, m), flags)

    def _shape(self, key: str | bytes, line: str) -> Shape | None:
        m = match_header(line)  # the line's own match: shapes come from it, as in detect.py
        shape = shape_of(m) if m is not None else None
        if shape == self.shape:
            shape = self.shape  # one object, so the loop compares identities
        self.shapes[key] = shape
        return shape

    def _open(self, m: "re.Match[str]", body: int, number: int) -> _Open | None:
        """A new entry at a header of the chosen shape, or None when its date is no date."""
        groups = m.group(*self.groups)
        ymd = self.dates[groups] if groups in self.dates else self._date(m, number, groups)
        if ymd is None:
            return None
        times = m.group("ap0", "H", "M", "S", "ap")
        clock = self.clocks.get(times)
        if clock is None:
            clock = clock_of(m)
            if clock is None:
                return None
            if len(self.clocks) > _CLOCK_CACHE_MAX:
                self.clocks.clear()
            self.clocks[times] = clock
        hour, minute, second, impossible = clock
        flags = ["impossible-time"] if impossible else None
        if self.shape.kind == "no-year":
            flags = [*(flags or ()), "year-inferred"]
        when = datetime(ymd[0], ymd[1], ymd[2], hour, minute, second)
        return _Open(number, when, body, flags)

    def _date(
        self, m: "re.Match[str]", number: int, groups: tuple[str, ...]
    ) -> tuple[int, int, int] | None:
        raw = raw_date(m, self.shape)
        if raw is None:
            self.dates[groups] = None
            return None
        if raw.year is None:
            return self._no_year_date(raw.first, raw.second, number)
        resolved = raw.resolve(self.day_first)
        if resolved is None:
            order = "day first" if self.day_first else "month first"
            raise ExportError(
                self.export.file_name,
                f"date {'/'.join(groups)} is impossible read {order}; the date order is wrong",
                number,
            )
        ymd = (resolved.year, resolved.month, resolved.day)
        self.dates[groups] = ymd
        return ymd

    def _no_year_date(self, day: int, month: int, number: int) -> tuple[int, int, int]:
        if self.year is None:
            raise ExportError(
                self.export.file_name,
                "the headers carry no year (`18 Mar 12:14 - `): give the year of the first "
                "message (parse(first_year=...))",
                number,
            )
        if self.last_month is not None and month < self.last_month - 6:
            self.year += 1  # December -> January: the next year
        self.last_month = month
        try:
            date(self.year, month, day)
        except ValueError:
            raise ExportError(
                self.export.file_name, f"{day} {month} {self.year} is no date", number
            ) from None
        return self.year, month, day

    def _close(self, current: _Open, text: str, end: int, index: int, last_line: int) -> Entry:
        """The entry whose text runs to the line before text[end] (from earlier blocks too)."""
        rest = text[current.begin : end - 1] if end > current.begin else None
        if current.parts is not None:
            rest = "\n".join(current.parts if rest is None else [*current.parts, rest])
        assert rest is not None
        # split_author() on the first line: the author never comes from a continuation line
        line_end = rest.find("\n")
        cut = rest.find(": ", 0, line_end) if line_end >= 0 else rest.find(": ")
        if cut >= 0:
            author: str | None = rest[:cut]
            body = rest[cut + 2 :]
        elif line_end < 0:
            author, body = split_author(rest)
        else:
            author, body = split_author(rest[:line_end])
            body += rest[line_end:]
        kind = classify(author, body, self.platform)
        flags = current.flags
        if kind.system_guess:
            flags = [*(flags or ()), "system-guess"]
        entry = _new(Entry)
        _set(
            entry,
            "__dict__",
            {  # the frozen dataclass's own fields, set at once: its __init__ costs ~3 us
                "index": index,
                "first_line": current.first_line,
                "last_line": last_line,
                "local_time": current.when,
                "has_seconds": self.shape.has_seconds,
                "author": author,
                "text": body,
                "kind": kind.kind,
                "attachment": kind.attachment,
                "edited": is_edited(body),
                "flags": tuple(dict.fromkeys(flags)) if flags else (),
            },
        )
        return entry


_new = object.__new__
_set = object.__setattr__
