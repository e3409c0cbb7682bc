"""The header lines of a block of text, found by one regex search in C rather than line by line.

Both passes loop over what `scan()` yields, so a continuation line costs nothing in Python and a
header line one regex match. The result is exactly `match_header()` applied to every line:

- the block regex is DATE_FIRST | TIME_FIRST | NO_YEAR after a "\\n", tried in the order
  match_header() tries them; no part of them can match a "\\n", so a match never leaves its line,
  and MULTILINE makes `$` (in the a.m./p.m. lookahead) stop at a line end as on a single line;
- it runs on a view of the block with U+00A0 and U+202F as spaces, which is the shadow of every
  line without a directional mark (a header is at most ~70 characters, inside PREFIX);
- lines with a mark in their first PREFIX characters (the shadow drops it, so offsets move) and
  the rare time-first and no-year headers go through match_header() itself;
- given a shape (parse() knows the file's, detect() the likeliest so far), batches() finds the
  headers of that shape with a regex of their own, several times cheaper than the block regex's
  40-odd groups, and makes their block-regex matches only when asked for (shape_regex(),
  Matches); every other line that could start a header still gets the block regex.
"""

import re
from collections.abc import Iterator, Sequence
from functools import cache
from itertools import compress, repeat
from operator import attrgetter, itemgetter, sub
from typing import overload

from imports.parsing.headers import (
    _HOUR,
    _SIXTY,
    _SKELETON_ASCII,
    DATE_FIRST,
    MARKS,
    NO_YEAR,
    PREFIX,
    TIME_FIRST,
    Shape,
    body_start,
    match_header,
    skeleton_of,
)

MARK = re.compile(f"[{MARKS}]")


def _renamed(pattern: str, suffix: str) -> str:
    """The pattern with its group names suffixed, so that three patterns fit in one regex."""
    pattern = re.sub(r"\(\?P<(\w+)>", rf"(?P<\1{suffix}>", pattern)
    return re.sub(r"\(\?P=(\w+)\)", rf"(?P=\1{suffix})", pattern)


# A header starts with "[" or a digit (match_header's first test; "R12/..." never starts one).
_BLOCK = re.compile(
    rf"\n(?=[\[\d])(?:(?P<df>{DATE_FIRST.pattern})|(?P<tf>{_renamed(TIME_FIRST.pattern, '_t')})"
    rf"|(?P<ny>{_renamed(NO_YEAR.pattern, '_n')}))",
    re.MULTILINE,
)
Found = tuple[int, int, "re.Match[str]", str]  # line start, body start, match, header text


def scan(text: str, pos: int = 0) -> Iterator[Found]:
    """Each header line of text[pos:] (pos a line start, text ending with "\\n"): the offsets of
    the line and of its body in text, the header match (its groups named as in headers.py) and
    the header as matched (the shadow of the line's start)."""
    view = "\n" + text  # view[i] is the "\n" before the line starting at text[i]
    if "\u00a0" in view:
        view = view.replace("\u00a0", " ")
    if "\u202f" in view:
        view = view.replace("\u202f", " ")
    finditer = _BLOCK.finditer
    for stop in (*_marked_lines(text, pos), len(text)):
        for m in finditer(view, pos, stop):
            if m.lastgroup == "df":
                head = m.group(1)
                if (head[0] == "[") == (head[-2:] == "] "):  # `[` goes with `] `, as in headers.py
                    yield m.start(), m.end() - 1, m, head
            else:
                found = _line(text, m.start())
                if found is not None:
                    yield found
        if stop < len(text):
            found = _line(text, stop)
            if found is not None:
                yield found
            pos = text.index("\n", stop) + 1


# What batches() yields, in file order: the matches, the skeletons, line starts, body starts and
# header texts.
Batch = tuple[Sequence["re.Match[str]"], list[str | bytes], list[int], list[int], list[str]]
# A batch holds the headers of about this much text: a few hundred, so that the matches alive at
# once stay under the collector's threshold (700 allocations). Batches of thousands had their
# matches moved to the oldest generation, which set off full collections: in a process the size
# of the portal's, 12% of the parse time.
BATCH_CHARS = 1 << 15
_LASTGROUP = attrgetter("lastgroup")
_HEAD = itemgetter(1)
_START = re.Match.start
_END = re.Match.end


def batches(text: str, pos: int = 0, shape: Shape | None = None) -> Iterator[Batch]:
    """What scan(text, pos) yields, in lists of about BATCH_CHARS of text each, gathered in C
    (list(finditer), map) instead of one generator step per header: the header matches, the
    skeleton_of() of each header text, the line starts and the body starts. `shape` (the
    file's, or the likeliest so far) changes nothing but the speed: see shape_regex()."""
    view = "\n" + text
    if "\u00a0" in view:
        view = view.replace("\u00a0", " ")
    if "\u202f" in view:
        view = view.replace("\u202f", " ")
    own = shape_regex(shape) if shape is not None else None
    marked = _marked_lines(text, pos)
    mi, end = 0, len(text)
    while pos < end:
        limit = text.find("\n", pos + BATCH_CHARS) + 1 or end
        ms = Matches(view)
        starts: list[int] = []
        bodies: list[int] = []
        heads: list[str] = []
        found = (ms.items, starts, bodies, heads)
        while True:
            stop = marked[mi] if mi < len(marked) and marked[mi] < limit else limit
            if own is None:
                _segment(view, text, pos, stop, found)
            else:
                _own_segment(own, view, text, pos, stop, found)
            if stop == limit:
                pos = limit
                break
            marked_line = _line(text, stop)
            if marked_line is not None:
                _add(found, marked_line)
            pos = text.index("\n", stop) + 1
            mi += 1
        batch = _with_skeletons(ms, starts, bodies, heads)
        if batch[0]:
            yield batch


# The lists batches() fills for one batch: matches (or line starts, see Matches), line starts,
# body starts and header texts.
_Lists = tuple[list["int | re.Match[str]"], list[int], list[int], list[str]]


def _add(found: _Lists, one: Found) -> None:
    found[0].append(one[2])
    found[1].append(one[0])
    found[2].append(one[1])
    found[3].append(one[3])


def _segment(view: str, text: str, pos: int, stop: int, found: _Lists) -> None:
    """The headers of the lines from text[pos] to text[stop] (no marked line among them)."""
    seg = list(_BLOCK.finditer(view, pos, stop))
    if not seg:
        return
    if set(map(_LASTGROUP, seg)) == {"df"}:  # the brackets are checked by _with_skeletons()
        found[0].extend(seg)
        found[1].extend(map(_START, seg))
        found[2].extend(map(sub, map(_END, seg), repeat(1)))
        found[3].extend(map(_HEAD, seg))
    else:
        for one in _each(text, seg):
            _add(found, one)


def _own_segment(
    own: "re.Pattern[str]", view: str, text: str, pos: int, stop: int, found: _Lists
) -> None:
    """_segment() with a shape's own regex: it stops at every line that could start a header
    (`\\n(?=[\\[\\d])`, as _BLOCK) and reads the header there when it is of that shape; the
    other such lines get _BLOCK.match() each, which is what _BLOCK.finditer() would find."""
    seg = list(own.finditer(view, pos, stop))
    if not seg:
        return
    own_heads = list(map(_HEAD, seg))
    if None not in own_heads:  # the usual case: every such line is a header of that shape
        lines = list(map(_START, seg))
        found[0].extend(lines)
        found[1].extend(lines)
        found[2].extend(map(sub, map(_END, seg), repeat(1)))
        found[3].extend(own_heads)
        return
    for m, head in zip(seg, own_heads, strict=True):
        start = m.start()
        if head is not None:
            found[0].append(start)
            found[1].append(start)
            found[2].append(m.end() - 1)
            found[3].append(head)
        else:
            other = _BLOCK.match(view, start, stop)
            for one in _each(text, [other] if other is not None else []):
                _add(found, one)


def _with_skeletons(ms: "Matches", starts: list[int], bodies: list[int], heads: list[str]) -> Batch:
    """The batch with the skeleton of each header, less the date-first ones whose brackets do
    not pair."""
    if not heads:
        return ms, [], starts, bodies, heads
    joined = "\n".join(heads)
    if joined.isascii():  # then skeleton_of() gives bytes for each head, as here
        sk: list[str | bytes] = list(joined.encode().translate(_SKELETON_ASCII).split(b"\n"))
    else:
        sk = list(map(skeleton_of, heads))
    wrong = [key for key in set(sk) if not _brackets_pair(key)]
    if not wrong:
        return ms, sk, starts, bodies, heads
    keep = [key not in wrong for key in sk]  # `[` goes with `] `, as in scan()
    return (
        list(compress(ms, keep)),
        list(compress(sk, keep)),
        list(compress(starts, keep)),
        list(compress(bodies, keep)),
        list(compress(heads, keep)),
    )


class Matches(Sequence["re.Match[str]"]):
    """A batch's header matches. Those of the headers found by a shape's own regex are kept as
    their line start and made by _BLOCK.match() only when asked for (part() and raw_date() want
    one per new skeleton or date, the slow paths all): most never are, and a match with 40-odd
    groups costs more than finding the header."""

    __slots__ = ("items", "view")

    def __init__(self, view: str) -> None:
        self.view = view
        self.items: list[int | re.Match[str]] = []

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> "re.Match[str]": ...

    @overload
    def __getitem__(self, index: slice) -> "list[re.Match[str]]": ...

    def __getitem__(self, index: int | slice) -> "re.Match[str] | list[re.Match[str]]":
        if isinstance(index, slice):
            return list(map(self._made, self.items[index]))
        return self._made(self.items[index])

    def __iter__(self) -> Iterator["re.Match[str]"]:
        return map(self._made, self.items)

    def _made(self, item: "int | re.Match[str]") -> "re.Match[str]":
        if not isinstance(item, int):
            return item
        # The line's header ends before its "\n", so the search's end (finditer()'s endpos)
        # changes nothing: `$` in the a.m./p.m. lookahead only ever stops at that "\n".
        m = _BLOCK.match(self.view, item)
        assert m is not None, "shape_regex() found a header that _BLOCK does not"
        return m


@cache
def shape_regex(shape: Shape) -> "re.Pattern[str] | None":
    """A regex that stops at every line that could start a header (`\\n(?=[\\[\\d])`, as
    _BLOCK) and, in group 1, reads the header there when it is one of `shape`: DATE_FIRST with
    each choice fixed to the shape's. Where it reads one, _BLOCK reads the same text: each part
    of DATE_FIRST can match only one way there (digit runs end at a non-digit; a separator, the
    optional seconds and the terminator start differently; a.m./p.m. cannot follow a time
    followed by "-", "]", "." or ":"). None for the shapes where that does not hold (a " "
    terminator, which an a.m./p.m. marker can follow) or that batches() seldom meets."""
    if shape.kind != "date-first" or shape.ampm or shape.end == " ":
        return None
    ds, ts = re.escape(shape.date_sep), re.escape(shape.time_sep)
    head = (
        (r"\[" if shape.bracket else "")
        + rf"[RHST]?\d{{1,4}}{ds}\d{{1,4}}{ds}[RHST]?\d{{1,4}}"
        + (" BE" if shape.year_style == "be" else "")
        + (r"\." if shape.date_end else "")
        + re.escape(shape.sep)
        + rf"{_HOUR}{ts}{_SIXTY}"
        + (rf"{ts}{_SIXTY}" if shape.has_seconds else "")
        + re.escape(shape.end)
    )
    return re.compile(rf"\n(?=[\[\d])({head})?")


def part(m: "re.Match[str]", first: str, last: str) -> slice:
    """Where groups `first` to `last` of a header match are in its header text (batches()'
    heads): the same for every header of one skeleton, whose digit runs and separators fix
    where each group starts and ends."""
    base = m.start(1) if m.re is _BLOCK else m.start()
    return slice(m.start(first) - base, m.end(last) - base)


def _brackets_pair(key: str | bytes) -> bool:
    if isinstance(key, bytes):
        return (key[:1] == b"[") == (key[-2:] == b"] ")
    return (key[:1] == "[") == (key[-2:] == "] ")


def _each(text: str, seg: list["re.Match[str]"]) -> Iterator[Found]:
    """scan()'s loop body over some matches, for segments with time-first or no-year ones."""
    for m in seg:
        if m.lastgroup == "df":
            head = m.group(1)
            if (head[0] == "[") == (head[-2:] == "] "):
                yield m.start(), m.end() - 1, m, head
        else:
            found = _line(text, m.start())
            if found is not None:
                yield found


def _line(text: str, start: int) -> Found | None:
    line = text[start : text.index("\n", start)]
    m = match_header(line)
    if m is None:
        return None
    return start, start + body_start(line, m), m, m[0]


def _marked_lines(text: str, pos: int) -> list[int]:
    """Starts of the lines with a directional mark in their first PREFIX characters; one search
    and one look back per such line, so a line full of marks costs no more than one."""
    starts = []
    search = MARK.search
    found = search(text, pos)
    while found is not None:
        at = found.start()
        start = text.rfind("\n", 0, at) + 1
        if at - start < PREFIX:
            starts.append(start)
        found = search(text, text.index("\n", at) + 1)
    return starts


def line_at(text: str, start: int) -> str:
    """The line starting at text[start], without its "\\n"."""
    return text[start : text.index("\n", start)]
