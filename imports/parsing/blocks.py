"""The header lines of a block of text, found by one regex search in C rather than line by line.

Both passes loop over what `scan()` yields, so a continuation line costs nothing in Python and a
header line one regex match. The result is exactly `match_header()` applied to every line:

- the block regex is DATE_FIRST | TIME_FIRST | NO_YEAR after a "\\n", tried in the order
  match_header() tries them; no part of them can match a "\\n", so a match never leaves its line,
  and MULTILINE makes `$` (in the a.m./p.m. lookahead) stop at a line end as on a single line;
- it runs on a view of the block with U+00A0 and U+202F as spaces, which is the shadow of every
  line without a directional mark (a header is at most ~70 characters, inside PREFIX);
- lines with a mark in their first PREFIX characters (the shadow drops it, so offsets move) and
  the rare time-first and no-year headers go through match_header() itself.
"""

import re
from collections.abc import Iterator
from itertools import compress, repeat
from operator import attrgetter, itemgetter, sub

from imports.parsing.headers import (
    _SKELETON_ASCII,
    DATE_FIRST,
    MARKS,
    NO_YEAR,
    PREFIX,
    TIME_FIRST,
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
Batch = tuple[list["re.Match[str]"], list[str | bytes], list[int], list[int], list[str]]
BATCH_CHARS = 1 << 18  # a batch holds the headers of about this much text (bounds its memory)
_LASTGROUP = attrgetter("lastgroup")
_HEAD = itemgetter(1)
_START = re.Match.start
_END = re.Match.end


def batches(text: str, pos: int = 0) -> Iterator[Batch]:
    """What scan(text, pos) yields, in lists of about BATCH_CHARS of text each, gathered in C
    (list(finditer), map) instead of one generator step per header: the header matches, the
    skeleton_of() of each header text, the line starts and the body starts."""
    view = "\n" + text
    if "\u00a0" in view:
        view = view.replace("\u00a0", " ")
    if "\u202f" in view:
        view = view.replace("\u202f", " ")
    finditer = _BLOCK.finditer
    marked = _marked_lines(text, pos)
    mi, end = 0, len(text)
    while pos < end:
        limit = text.find("\n", pos + BATCH_CHARS) + 1 or end
        ms: list[re.Match[str]] = []
        starts: list[int] = []
        bodies: list[int] = []
        heads: list[str] = []
        while True:
            stop = marked[mi] if mi < len(marked) and marked[mi] < limit else limit
            seg = list(finditer(view, pos, stop))
            if seg:
                if set(map(_LASTGROUP, seg)) == {"df"}:  # the brackets are checked below
                    ms += seg
                    starts += map(_START, seg)
                    bodies += map(sub, map(_END, seg), repeat(1))
                    heads += map(_HEAD, seg)
                else:
                    for found in _each(text, seg):
                        starts.append(found[0])
                        bodies.append(found[1])
                        ms.append(found[2])
                        heads.append(found[3])
            if stop == limit:
                pos = limit
                break
            marked_line = _line(text, stop)
            if marked_line is not None:
                starts.append(marked_line[0])
                bodies.append(marked_line[1])
                ms.append(marked_line[2])
                heads.append(marked_line[3])
            pos = text.index("\n", stop) + 1
            mi += 1
        if not ms:
            continue
        joined = "\n".join(heads)
        if joined.isascii():  # then skeleton_of() gives bytes for each head, as here
            sk: list[str | bytes] = list(joined.encode().translate(_SKELETON_ASCII).split(b"\n"))
        else:
            sk = list(map(skeleton_of, heads))
        wrong = [key for key in set(sk) if not _brackets_pair(key)]
        if wrong:  # `[` goes with `] `, as in scan() (the skeleton keeps both)
            keep = [key not in wrong for key in sk]
            ms = list(compress(ms, keep))
            sk = list(compress(sk, keep))
            starts = list(compress(starts, keep))
            bodies = list(compress(bodies, keep))
            heads = list(compress(heads, keep))
        yield ms, sk, starts, bodies, heads


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
