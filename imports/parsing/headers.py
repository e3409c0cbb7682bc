"""Message header lines: what a header looks like, its shape, and its date and time.

A header is matched on the *shadow* of the line's first characters (directional marks and BOMs
removed, no-break spaces as spaces), never on the stored text. One generous grammar covers the
shared doc's sections 4.1-4.3: Android `D, T - `, iOS `[D, T] `, time-first `[T, D] `, legacy
`D T: ` and `D T `, no-year `18 Mar 12:14 - `. Each matching line has a *shape* (brackets,
separators, year position, seconds, 12/24 h style, terminator): detect.py picks the file's most
frequent shape and the parser only starts entries at lines of that shape.

Shapes are computed once per *skeleton* (the header text with its digits replaced by 9), so
a million headers cost a regex match, a str.translate and two dict look-ups each.
"""

import re
from dataclasses import dataclass
from datetime import date

MARKS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
_SHADOW = str.maketrans({**dict.fromkeys(MARKS), "\u00a0": " ", "\u202f": " "})
_DIGIT_ZEROS = (0x30, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0xFF10)
_SKELETON = str.maketrans({z + i: "9" for z in _DIGIT_ZEROS for i in range(10)})
PREFIX = 96  # headers are shorter; longer lines are matched on their first PREFIX characters

# 12-hour markers after the time, as (morning, afternoon) pairs. Latin a.m./p.m. in every spelling
# is matched by one pattern; the rest are CLDR day periods seen in exports or in the parsers the
# shared doc surveys.
_AMPM_PAIRS = (
    ("ص", "م"),  # Arabic
    ("SA", "CH"),  # Vietnamese
    ("vorm.", "nachm."),  # German (older Android)
    ("π.μ.", "μ.μ."),  # Greek
    ("πμ", "μμ"),
    ("ق.ظ.", "ب.ظ."),  # Persian
    ("fm", "em"),  # Swedish, Danish, Norwegian
    ("f.m.", "e.m."),
    ("ap.", "ip."),  # Finnish
    ("ÖÖ", "ÖS"),  # Turkish
    ("ก่อนเที่ยง", "หลังเที่ยง"),  # Thai
    ("पूर्वाह्न", "अपराह्न"),  # Hindi
    ("PG", "PTG"),  # Malay
    ("午前", "午後"),  # Japanese, Korean, Chinese (also written before the time)
    ("오전", "오후"),
    ("上午", "下午"),
    ("לפנה״צ", "אחה״צ"),  # Hebrew
)
# English day periods (wolfschuh/whatsapp-chat-history-viewer exports, Android en-GB/en-IN).
_DAY_PERIODS = {
    "in the morning": "morning",
    "in the afternoon": "afternoon",
    "in the evening": "evening",
    "at night": "night",
    "noon": "noon",
    "midnight": "midnight",
}
_AMPM_WORDS = {
    **_DAY_PERIODS,
    **{am: "am" for am, _ in _AMPM_PAIRS},
    **{pm: "pm" for _, pm in _AMPM_PAIRS},
}
_FAMILIES = {w: f"{am}/{pm}" for am, pm in _AMPM_PAIRS for w in (am, pm)}
_PREFIX_AMPM = ("午前", "午後", "오전", "오후", "上午", "下午", "ÖÖ", "ÖS")
_WORDS = "|".join(re.escape(w) for w in sorted(_AMPM_WORDS, key=len, reverse=True))
_LATIN_AMPM = r"[AaPp]\.? ?[Mm]\.?"

_DATE = (
    r"(?P<d1>[RHST]?\d{1,4})(?P<ds>\. ?|/|-)(?P<d2>\d{1,4})(?P=ds)(?P<d3>[RHST]?\d{1,4})"
    r"(?P<be> BE)?(?P<dend>\.)?"
)
# Hours 0-23 and minutes/seconds 0-59 in the regex itself, so both passes agree on what a header
# is without converting numbers; Arabic-Indic and Persian digits included.
_HOUR = r"(?:[01\u0660\u0661\u06f0\u06f1]?\d|[2\u0662\u06f2][0-3\u0660-\u0663\u06f0-\u06f3])"
_SIXTY = r"[0-5\u0660-\u0665\u06f0-\u06f5]\d"
_SEP = r"(?P<sep>, ?|، ?| à | klo | )"
_TIME = (
    rf"(?P<ap0>(?:{'|'.join(_PREFIX_AMPM)}) ?)?"
    rf"(?P<H>{_HOUR})(?P<ts>[:.])(?P<M>{_SIXTY})(?:(?P=ts)(?P<S>{_SIXTY}))?"
    # The lookahead spares the regex engine the ~40 marker alternatives on the usual header,
    # where the time is followed by " - ", "] " or ": " (re tries alternatives one by one).
    rf"(?P<ap> ?(?![-\]:, ]|$)(?:{_LATIN_AMPM}|{_WORDS}))?"
)
_END = r"(?P<end>\] |\.? - |: | )"
_NO_YEAR_DATE = r"(?P<nd>\d{1,2}) (?P<mon>[A-Za-z]{3,9})\.?"

DATE_FIRST = re.compile(rf"(?P<open>\[)?{_DATE}{_SEP}{_TIME}{_END}")
TIME_FIRST = re.compile(rf"(?P<open>\[){_TIME}{_SEP}{_DATE}{_END}")
NO_YEAR = re.compile(rf"(?P<open>\[)?{_NO_YEAR_DATE}{_SEP}{_TIME}{_END}")

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        1,
    )
    for name in names
}
_ERAS = {"R": 2018, "H": 1988, "S": 1925, "T": 1911}  # Reiwa 1 = 2019, Heisei 1 = 1989, ...
_BUDDHIST_FROM = 2400  # a 4-digit year past this is Buddhist Era (year - 543) even without "BE"


_HIDDEN = re.compile(f"[{MARKS}\u00a0\u202f]")
_MARK = re.compile(f"[{MARKS}]")
_SKELETON_ASCII = bytes.maketrans(b"0123456789", b"9999999999")


def shadow(text: str) -> str:
    """The text as matched (never as stored): U+200E/U+200F, U+202A-U+202E, U+2066-U+2069 and
    U+FEFF removed, U+00A0 and U+202F as plain spaces. Used for duplicate matching too."""
    # str.translate with a dict costs microseconds on non-ASCII text; a regex sub and replace
    # run in C, and most lines have nothing to change at all.
    if text.isascii() or _HIDDEN.search(text) is None:  # isascii() costs nothing
        return text
    text = _MARK.sub("", text)
    if "\u00a0" in text:
        text = text.replace("\u00a0", " ")
    return text.replace("\u202f", " ") if "\u202f" in text else text


@dataclass(frozen=True)
class Shape:
    """What all header lines of one export have in common."""

    kind: str  # "date-first" | "time-first" | "no-year"
    bracket: bool
    date_sep: str  # between day, month and year: "/", ".", "-", ". "
    sep: str  # between date and time
    time_sep: str
    has_seconds: bool
    ampm: str  # "" for 24 h, else the marker's family ("a.m.", "AM", "ص/م", "in the morning"...)
    ampm_first: bool
    year_pos: int | None  # 0, 1, 2; None without a year
    year_style: str  # "yy" | "yyyy" | "era" | "be" | ""
    date_end: str  # "." after the date (`13. 6. 2018.`)
    end: str  # the terminator: "] ", " - ", ". - ", ": ", " "

    @property
    def platform(self) -> str:
        if self.end == "] ":
            return "ios"
        return "android" if self.end.endswith(" - ") else "legacy"

    @property
    def clock(self) -> str:
        return "12h" if self.ampm else "24h"

    @property
    def calendar(self) -> str:
        return {"era": "japanese", "be": "buddhist"}.get(self.year_style, "gregorian")

    def describe(self, order: str | None) -> str:
        """Human text such as "[dd/mm/yyyy, HH:MM:SS]" or "d.m.yy, H:MM -"."""
        if self.kind == "no-year":
            date_text = "dd Mon"
        else:
            year = {"yy": "yy", "era": "Ey"}.get(self.year_style, "yyyy")
            letters = {"d": "dd", "m": "mm", "y": year}
            slots = list(order) if order else ["?", "?", "?"]
            if order is None and self.year_pos is not None:
                slots[self.year_pos] = "y"
            date_text = self.date_sep.join(letters.get(s, "??") for s in slots) + self.date_end
            if self.year_style == "be":
                date_text += " BE"
        clock = ("hh" if self.ampm else "HH") + self.time_sep + "MM"
        clock += self.time_sep + "SS" if self.has_seconds else ""
        if self.ampm:
            clock = f"{self.ampm} {clock}" if self.ampm_first else f"{clock} {self.ampm}"
        first, second = (clock, date_text) if self.kind == "time-first" else (date_text, clock)
        text = f"{first}{self.sep}{second}"
        if self.bracket:
            return f"[{text}]"
        return f"{text}{self.end.rstrip()}"


@dataclass(frozen=True)
class RawDate:
    """A header date before the day/month order is known: the two non-year numbers in file
    order (`first`, `second`) and the Gregorian year (None without one)."""

    first: int
    second: int
    year: int | None
    buddhist: bool = False

    def resolve(self, day_first: bool) -> date | None:
        """The date under one reading, or None when that reading is impossible (31/02)."""
        day, month = (self.first, self.second) if day_first else (self.second, self.first)
        try:
            return date(self.year if self.year is not None else 2000, month, day)
        except ValueError:
            return None


def match_header(line: str) -> "re.Match[str] | None":
    """The header match on the shadow of the line's start, or None (fast for other lines)."""
    first = line[:1]
    if not (first == "[" or first.isdigit() or (first and first in MARKS)):
        return None
    text = shadow(line[:PREFIX])
    m = DATE_FIRST.match(text)
    if m is None:
        m = TIME_FIRST.match(text) if text[:1] == "[" else None
        if m is None:
            m = NO_YEAR.match(text)
            if m is None:
                return None
    if (m["open"] is None) == (m["end"] == "] "):
        return None
    return m


def body_start(line: str, m: "re.Match[str]") -> int:
    """Index in the stored line where the text after the header starts (marks after the
    header stay with the body, as `Alice: {LRM}image omitted` needs)."""
    end = m.end()
    prefix = line[:PREFIX]
    if len(m.string) == len(prefix):
        return end
    seen = 0
    for index, char in enumerate(line):
        if seen == end:
            return index
        if char not in MARKS:
            seen += 1
    return len(line)


def skeleton(m: "re.Match[str]") -> str | bytes:
    """The header with its digits as 9: the cache key of its shape (bytes when ASCII, faster)."""
    return skeleton_of(m[0])


def skeleton_of(text: str) -> str | bytes:
    """skeleton() of a header text."""
    if text.isascii():
        return text.encode().translate(_SKELETON_ASCII)
    return text.translate(_SKELETON)


def shape_of(m: "re.Match[str]") -> Shape | None:
    """The shape of a header match, or None when it cannot be a header (13:75, 2019/2020/12)."""
    groups = m.groupdict()
    if "nd" in groups:
        if groups["mon"].lower() not in MONTHS:
            return None
        kind, year_pos, year_style, date_sep = "no-year", None, "", " "
    else:
        kind = "time-first" if m.re is TIME_FIRST else "date-first"
        styles = [_year_style(groups[k]) for k in ("d1", "d2", "d3")]
        years = [i for i, s in enumerate(styles) if s]
        if groups["be"]:
            if years not in ([], [2]):
                return None
            years, styles[2] = [2], "be"
        if len(years) > 1:
            return None
        year_pos = years[0] if years else 2
        year_style = styles[year_pos] or "yy"
        date_sep = groups["ds"]
    ap = (groups["ap"] or "").strip()
    ap0 = (groups["ap0"] or "").strip()
    return Shape(
        kind=kind,
        bracket=groups["open"] is not None,
        date_sep=date_sep,
        sep=groups["sep"],
        time_sep=groups["ts"],
        has_seconds=groups["S"] is not None,
        ampm=_ampm_family(ap0 or ap),
        ampm_first=bool(ap0),
        year_pos=year_pos,
        year_style=year_style,
        date_end=groups.get("dend") or "",
        end=groups["end"],
    )


def _year_style(component: str) -> str:
    if component[:1] in _ERAS:
        return "era"
    return "yyyy" if len(component) == 4 else ""


def _ampm_family(token: str) -> str:
    if not token:
        return ""
    if token in _DAY_PERIODS:
        return "day period"
    if token in _FAMILIES:
        return _FAMILIES[token]
    # Latin a.m./p.m. in any spelling is one family: no export mixes them, but hand-edited
    # files (chat-miner's) do, and the spelling says nothing about the order or the clock.
    return "AM/PM"


def raw_date(m: "re.Match[str]", shape: Shape) -> RawDate | None:
    """The date of a header before its order is known; None when no reading can be a date."""
    if shape.kind == "no-year":
        return RawDate(int(m["nd"]), MONTHS[m["mon"].lower()], None)
    parts = [m["d1"], m["d2"], m["d3"]]
    year_text = parts.pop(shape.year_pos if shape.year_pos is not None else 2)
    first, second = int(parts[0]), int(parts[1])
    if not (1 <= first <= 31 and 1 <= second <= 31) or (first > 12 and second > 12):
        return None
    buddhist = shape.year_style == "be"
    if year_text[:1] in _ERAS:
        year = _ERAS[year_text[0]] + int(year_text[1:])
    elif len(year_text) <= 2:
        year = 2000 + int(year_text)  # every parser surveyed reads 2-digit years as 20yy
    else:
        year = int(year_text)
        buddhist = buddhist or year >= _BUDDHIST_FROM
    if buddhist:
        year -= 543
    if not 1 <= year <= 9999:
        return None
    return RawDate(first, second, year, buddhist)


def clock_of(m: "re.Match[str]") -> tuple[int, int, int, bool] | None:
    """(hour, minute, second, impossible) in 24 h; None when not a time (minute 75, hour 31).
    `impossible` marks a 12-hour time that cannot be (00:08 a. m., 23:59 PM), read as written."""
    hour, minute = int(m["H"]), int(m["M"])
    second = int(m["S"]) if m["S"] is not None else 0
    if hour > 23 or minute > 59 or second > 59:
        return None
    token = (m["ap0"] or m["ap"] or "").strip()
    if not token:
        return hour, minute, second, False
    meaning = _AMPM_WORDS.get(token) or ("am" if token[0] in "Aa" else "pm")
    if hour == 0 or hour > 12:
        return hour, minute, second, True
    return _to_24h(hour, meaning), minute, second, False


def _to_24h(hour: int, meaning: str) -> int:
    twelve = hour % 12  # 12 o'clock counts as 0 within its half of the day
    if meaning in ("am", "midnight"):
        return twelve
    if meaning == "morning":
        return twelve
    if meaning == "noon":
        return 12
    if meaning == "night":  # CLDR "at night" runs from 21:00 to 06:00
        return twelve + 12 if hour >= 6 and hour != 12 else twelve
    return twelve + 12  # pm, afternoon, evening
