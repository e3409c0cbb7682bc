"""batches() finds the same headers with a shape's own regex as without it (blocks.shape_regex)."""

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imports.parsing.blocks import Batch, batches, shape_regex
from imports.parsing.headers import Shape, match_header, shape_of

# Digit runs, mostly of two (mostly small) digits: valid and invalid times both come up often.
DIGITS = st.text("0123450123456789\u0660\u0661", min_size=2, max_size=2) | st.text(
    "0123456789\u0660\u0661\u0662", min_size=1, max_size=4
)


OPENINGS = ["", "[", "\u200e"]
DATE_SEPARATORS = ["/", ".", "-", ". "]
DATE_EXTRAS = ["", "R", " BE", "."]  # era, Buddhist year, "." after the date
SEPARATORS = [", ", ",", " ", " à ", "\u00a0", ", \u200e"]  # between date and time
TIME_SEPARATORS = [":", "."]
MARKERS = ["", " PM", "am", " a.m.", " in the morning", " X"]
ENDS = ["] ", " - ", ". - ", ": ", " ", "] -", ":", ""]
LAYOUT = st.tuples(
    st.sampled_from(OPENINGS),
    st.sampled_from(DATE_SEPARATORS),
    st.sampled_from(DATE_EXTRAS),
    st.sampled_from(SEPARATORS),
    st.sampled_from(TIME_SEPARATORS),
    st.sampled_from([2, 3]),  # with seconds or not
    st.sampled_from(MARKERS),
    st.sampled_from(ENDS),
)
# The layouts of the shapes shape_regex() reads, so that most examples exercise it.
READ = st.tuples(
    st.just(""),
    st.sampled_from(DATE_SEPARATORS),
    st.sampled_from(DATE_EXTRAS),
    st.sampled_from(SEPARATORS[:-1]),
    st.sampled_from(TIME_SEPARATORS),
    st.sampled_from([2, 3]),
    st.just(""),
    st.sampled_from([" - ", ". - ", ": "]),
) | st.tuples(
    st.just("["),
    st.sampled_from(DATE_SEPARATORS),
    st.sampled_from(DATE_EXTRAS),
    st.sampled_from(SEPARATORS[:-1]),
    st.sampled_from(TIME_SEPARATORS),
    st.sampled_from([2, 3]),
    st.just(""),
    st.just("] "),
)


@st.composite
def header_like(draw: st.DrawFn, layout: tuple[str, str, str, str, str, int, str, str]) -> str:
    """A line that starts like a header of `layout` (or of one a part away), with any digits,
    then a body."""
    if draw(st.booleans()):
        part = draw(st.integers(0, len(layout) - 1))
        layout = (*layout[:part], draw(LAYOUT)[part], *layout[part + 1 :])
    opening, ds, date_extra, sep, ts, parts, marker, end = layout
    date = ds.join(draw(st.lists(DIGITS, min_size=3, max_size=3)))
    date = f"R{date}" if date_extra == "R" else date + date_extra
    clock = ts.join(draw(st.lists(DIGITS, min_size=parts, max_size=parts))) + marker
    body = draw(st.sampled_from(["Alice: hi", "Bob - Work: a: b", "joined", "", "12 apples"]))
    return f"{opening}{date}{sep}{clock}{end}{body}"


@st.composite
def texts(draw: st.DrawFn) -> list[str]:
    """Lines mostly of one layout (so that headers of one shape meet near misses of it)."""
    layout = draw(READ | LAYOUT)
    line = st.one_of(
        header_like(layout),
        header_like(layout),
        # the same with an a.m./p.m. marker, which may follow a time where a " " ends headers
        st.sampled_from(MARKERS).flatmap(
            lambda marker: header_like((*layout[:6], marker, layout[7]))
        ),
        LAYOUT.flatmap(header_like),
        st.sampled_from(["plain", "10 people", "[x]", "", "1", "\u200e2"]),
    )
    return draw(st.lists(line, min_size=1, max_size=40))


def materialised(found: list[Batch]) -> list[tuple[object, ...]]:
    return [
        ([(m.span(), m.re.pattern, m.groupdict()) for m in ms], sk, starts, bodies, heads)
        for ms, sk, starts, bodies, heads in found
    ]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts(), st.integers(0, 3))
def test_it_finds_the_same_headers_with_a_shape_regex(chosen: list[str], first: int) -> None:
    text = "\n".join(chosen) + "\n"
    pos = sum(len(line) + 1 for line in chosen[: min(first, len(chosen))])
    shapes = {shape_of(m) for m in map(match_header, chosen) if m is not None} - {None}
    general = materialised(list(batches(text, pos)))
    for shape in shapes:
        assert shape is not None
        assert materialised(list(batches(text, pos, shape))) == general


def shape(line: str) -> Shape:
    m = match_header(line)
    found = shape_of(m) if m is not None else None
    assert found is not None
    return found


def test_it_reads_only_shapes_it_can_read_alike() -> None:
    assert isinstance(shape_regex(shape("13/01/2021, 08:00 - Alice: hi")), re.Pattern)
    assert isinstance(shape_regex(shape("[13/01/2021, 08:00:37] Alice: hi")), re.Pattern)
    assert shape_regex(shape("13/01/2021 08:00 Alice: hi")) is None  # a.m./p.m. may follow
    assert shape_regex(shape("13/01/2021, 8:00 PM - Alice: hi")) is None
