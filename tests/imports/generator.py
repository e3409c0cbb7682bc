"""Shared helpers of the parser tests: open a fixture or a string as an export and parse it."""

from collections.abc import Iterable
from pathlib import Path

from imports.parsing import Detected, Entry, ExportFile, detect, parse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "chat-exports"


def read(
    path: Path, name: str | None = None, order: str | None = None, **kw: int
) -> tuple[Detected, list[Entry]]:
    """Detect and parse a file; `order` overrides the detected order (needed when it is None)."""
    with ExportFile.open(path, name or path.name) as export:
        detected = detect(export)
        chosen = order or detected.date_order
        assert chosen is not None, detected.order_evidence
        return detected, list(parse(export, detected, chosen, **kw))


def fixture(name: str, order: str | None = None) -> tuple[Detected, list[Entry]]:
    return read(FIXTURES / name, name, order)


def text_export(
    tmp_path: Path, lines: Iterable[str] | str, order: str | None = None, *, name: str = "chat.txt"
) -> tuple[Detected, list[Entry]]:
    """Lines (joined with "\\n") or exact text written as UTF-8 and parsed."""
    body = lines if isinstance(lines, str) else "\n".join(lines) + "\n"
    path = tmp_path / name
    path.write_bytes(body.encode("utf-8"))
    return read(path, name, order)


def by_author(entries: list[Entry]) -> dict[str | None, list[Entry]]:
    found: dict[str | None, list[Entry]] = {}
    for entry in entries:
        found.setdefault(entry.author, []).append(entry)
    return found


# --------------------------------------------------------------------------- generated exports
# Messages drawn by hypothesis and rendered as an export in one of the supported variants;
# tests/imports/test_parsing_hypothesis.py parses them back. Placeholders come from the parser's
# own tables (a rendering must be one the parser claims to read).

import datetime as dt  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from hypothesis import strategies as st  # noqa: E402

from imports.parsing import kinds, shadow, vocabulary  # noqa: E402

LRM, RLM, NBSP, NNBSP = "\u200e", "\u200f", "\u00a0", "\u202f"
ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
# (morning, afternoon, what goes between the time and the marker; "prefix": before the time)
AMPM_SETS = [
    ("AM", "PM", " "),
    ("AM", "PM", NNBSP),
    ("am", "pm", NNBSP),
    ("a.m.", "p.m.", " "),
    ("a. m.", "p. m.", " "),
    (f"a.{NBSP}m.", f"p.{NBSP}m.", " "),
    ("SA", "CH", " "),
    ("午前", "午後", "prefix"),
]


@dataclass(frozen=True)
class Variant:
    platform: str  # "android" | "ios"
    order: str  # "dmy" | "mdy" | "ymd"
    twelve: tuple[str, str, str] | None
    sep: str
    time_sep: str
    year: str  # "yyyy" | "yy" | "be" | "era"
    arabic: bool
    time_first: bool
    crlf: bool
    bom: bool


@dataclass(frozen=True)
class Message:
    when: dt.datetime
    author: str | None
    text: str
    kind: str
    attachment: str | None = None


@st.composite
def variants(draw: st.DrawFn) -> Variant:
    platform = draw(st.sampled_from(["android", "ios"]))
    arabic = platform == "ios" and draw(st.booleans())
    year = draw(st.sampled_from(["yyyy", "yy", "be", "era"]))
    order = draw(st.sampled_from(["dmy", "mdy"] + (["ymd"] if year == "yyyy" else [])))
    if arabic:
        twelve = draw(st.sampled_from([None, ("ص", "م", NBSP)]))
        sep, time_sep = "، ", ":"
    else:
        twelve = draw(st.sampled_from([None, *AMPM_SETS]))
        seps = [", ", " "] + ([" à "] if platform == "android" else [])
        sep = draw(st.sampled_from(seps))
        time_sep = draw(st.sampled_from([":", "."]))
        if platform == "android" and twelve is None and draw(st.booleans()):
            sep, time_sep = " klo ", "."  # Finnish
    time_first = platform == "ios" and not arabic and twelve is None and draw(st.booleans())
    return Variant(
        platform,
        order,
        twelve,
        sep,
        time_sep,
        year,
        arabic,
        time_first,
        crlf=draw(st.booleans()),
        bom=draw(st.booleans()),
    )


def render_date(day: dt.date, v: Variant) -> str:
    if v.year == "be":
        year = f"{day.year + 543}" + (" BE" if v.platform == "ios" else "")
    elif v.year == "era":
        year = f"R{day.year - 2018}"
    elif v.year == "yy":
        year = f"{day.year % 100:02d}"
    else:
        year = f"{day.year}"
    d, m = f"{day.day}", f"{day.month:02d}"
    if v.arabic:
        d, m, year = (x.translate(ARABIC_DIGITS) + RLM for x in (d, m, year))
        year = year[:-1]
    parts = {"dmy": (d, m, year), "mdy": (m, d, year), "ymd": (year, m, d)}[v.order]
    return "/".join(parts)


def render_time(when: dt.datetime, v: Variant) -> str:
    hour = when.hour
    marker = ""
    if v.twelve is not None:
        am, pm, space = v.twelve
        hour = hour % 12 or 12
        token = am if when.hour < 12 else pm
        marker = token
    clock = f"{hour}{v.time_sep}{when.minute:02d}"
    if v.platform == "ios":
        clock += f"{v.time_sep}{when.second:02d}"
    if v.arabic:
        clock = clock.translate(ARABIC_DIGITS)
    if marker:
        clock = f"{marker}{clock}" if space == "prefix" else f"{clock}{space}{marker}"
    return clock


def render(messages: list[Message], v: Variant) -> bytes:
    lines = []
    for message in messages:
        date_text, time_text = render_date(message.when.date(), v), render_time(message.when, v)
        if v.platform == "ios":
            inner = (
                f"{time_text}{v.sep}{date_text}"
                if v.time_first
                else f"{date_text}{v.sep}{time_text}"
            )
            head = f"[{inner}] "
            if message.kind in ("media_omitted", "attachment", "deleted", "location", "contact"):
                head = LRM + head
        else:
            head = f"{date_text}{v.sep}{time_text} - "
        who = "" if message.author is None else f"{message.author}: "
        lines.append(head + who + message.text)
    text = "\n".join(lines) + "\n"
    if v.crlf:
        text = text.replace("\n", "\r\n")
    return (("\ufeff" if v.bom else "") + text).encode("utf-8")


NAME_CHARS = st.sampled_from(
    [
        *"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -+:.'()_",
        *["🤓", "👍", "é", "ß", "א", "ב", "ع", "ل", "李", NBSP, "\u2011"],
    ]
)
BODY_CHARS = st.sampled_from(
    [
        *"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789:,.-!?*_~'\"[]/",
        *["🤓", "é", "ש", "م", NBSP, NNBSP, "\u2068", "\u2069", LRM, "\t"],
    ]
)


@st.composite
def authors(draw: st.DrawFn) -> str:
    name = draw(st.text(NAME_CHARS, min_size=1, max_size=20).filter(lambda s: ": " not in s))
    name = name.strip() or "x"
    if draw(st.booleans()):
        name = draw(st.sampled_from(["~ ", f"~{NNBSP}"])) + name
    return name


def lookalike_lines(v: Variant) -> list[str]:
    """Body lines shaped like a header of some other variant (never of v's own shape)."""
    if v.platform == "android":
        return ["[16/03/2022, 15:20:01] Bob: quoted from an iPhone", "2016-04-29 10:30:00", "16:45"]
    return ["16/03/2022, 15:20 - Bob: quoted from Android", "2016-04-29 10:30:00", "16:45"]


@st.composite
def bodies(draw: st.DrawFn, v: Variant) -> str:
    first = draw(st.text(BODY_CHARS, max_size=40))
    first = first.lstrip(LRM) or "hi"
    if first.strip(f" \t{NBSP}{NNBSP}{LRM}\u2068\u2069") in ("", "null", "POLL:"):
        first = "hello " + first
    if kinds.EXACT.get(kinds._norm(shadow(first))):  # drew a placeholder (it happens!)
        first = "hello " + first
    # ...or a document's, which is any line ending so (`NAME document omitted`): hypothesis drew
    # "DoCumEnt wEGGElAtEn" (Dutch), a media_omitted line, and the test expected text
    if shadow(first).strip().casefold().endswith(kinds._DOCUMENT_OMITTED):
        first += " hi"
    more = draw(
        st.lists(
            st.one_of(st.text(BODY_CHARS, max_size=30), st.sampled_from(lookalike_lines(v))),
            max_size=3,
        )
    )
    # At most one line of another header shape per body: the file's own shape must stay the
    # most frequent (detect.py picks the shape by count; a real export can't be outnumbered).
    quoted = lookalike_lines(v)[0]
    while more.count(quoted) > 1:
        more.remove(quoted)
    return "\n".join([first, *more])


PLACEHOLDERS = {
    "android": [
        ("media_omitted", [f"<{w}>" for w in vocabulary.ANDROID_MEDIA_OMITTED[:30]]),
        (
            "deleted",
            [
                "This message was deleted",
                "You deleted this message",
                "Diese Nachricht wurde gelöscht.",
            ],
        ),
        ("call", ["Missed voice call", "Missed video call"]),
        ("location", ["location: https://maps.google.com/?q=52.08,5.10"]),
        ("view_once", ["null"]),
    ],
    "ios": [
        ("media_omitted", [LRM + w for w in vocabulary.IOS_MEDIA_OMITTED[:60]]),
        ("deleted", [LRM + "This message was deleted.", LRM + "Ce message a été supprimé."]),
        ("call", [LRM + "Missed voice call", LRM + "Verpasster Videoanruf"]),
        ("location", [LRM + "Location: https://maps.google.com/?q=52.08,5.10"]),
        ("contact", [LRM + "Contact card omitted"]),
    ],
}


@st.composite
def messages_of(draw: st.DrawFn, v: Variant, day: dt.datetime, chat: str) -> Message:
    choice = draw(
        st.sampled_from(["text"] * 5 + ["empty", "system", "placeholder", "attachment", "poll"])
    )
    author = draw(authors())
    if choice == "text":
        return Message(day, author, draw(bodies(v)), "text")
    if choice == "empty":
        return Message(day, author, "", "empty")
    if choice == "poll":
        return Message(day, author, "POLL:\nLunch?\nOPTION: Yes (2 votes)", "poll")
    if choice == "system":
        words = draw(st.text(st.sampled_from(list('abcdefgh xyz“”"')), min_size=1, max_size=30))
        text = f"{author.replace(':', '')} added {words}".rstrip(":")
        if v.platform == "ios" and draw(st.booleans()):
            return Message(day, chat, LRM + text, "system")  # attributed to the group
        return Message(day, None, text, "system")
    if choice == "attachment":
        name = draw(
            st.sampled_from(
                [
                    "IMG-20220323-WA0002.jpg",
                    "00000035-PHOTO-2022-03-27-21-41-55.jpg",
                    "Holiday photo.jpg",
                    "Bob.vcf",
                ]
            )
        )
        kind = "contact" if name.endswith(".vcf") else "attachment"
        if v.platform == "ios":
            return Message(day, author, f"{LRM}<attached: {name}>", kind, name)
        marker = draw(st.sampled_from(["file attached", "Datei angehängt", "arquivo anexado"]))
        return Message(day, author, f"{LRM}{name} ({marker})", kind, name)
    kind, texts = draw(st.sampled_from(PLACEHOLDERS[v.platform]))
    return Message(day, author, draw(st.sampled_from(texts)), kind)


@st.composite
def exports(draw: st.DrawFn) -> tuple[Variant, list[Message], bool]:
    """(variant, messages, decidable): decidable exports have a day > 12 (or are year first)."""
    v = draw(variants())
    decidable = v.order == "ymd" or draw(st.integers(0, 3)) > 0
    lowest = 2019 if v.year in ("era",) else 2001
    start = draw(st.datetimes(dt.datetime(lowest, 1, 1), dt.datetime(2030, 12, 1)))
    if decidable:
        start = start.replace(day=draw(st.integers(13, 28)))
    else:
        start = start.replace(day=start.month)  # 5/5: both readings agree, nothing decides
    if v.platform == "android":
        start = start.replace(second=0, microsecond=0)
    start = start.replace(microsecond=0)
    count = draw(st.integers(1, 12))
    messages, when = [], start
    for _ in range(count):
        messages.append(draw(messages_of(v, when, "Project Team")))
        step = dt.timedelta(
            seconds=draw(st.integers(0, 3 * 86400) if decidable else st.integers(0, 600))
        )
        when = when + step if decidable or (when + step).date() == start.date() else when
        if v.platform == "android":
            when = when.replace(second=0)
    return v, messages, decidable
