"""What an entry is (text, system line, attachment, placeholder...), read from its body.

Classification looks at the shadow of the body and never changes the stored text. It is by
structure first (shared doc, section 6.3): authorless lines are system lines; on iOS a body that
starts with U+200E and is no placeholder is a system line attributed to the chat or the actor,
flagged "system-guess". WhatsApp's own placeholder texts come from vocabulary.py.
"""

import re
from typing import NamedTuple

from imports.parsing import vocabulary
from imports.parsing.headers import shadow

LRM = "\u200e"


def _norm(text: str) -> str:
    """Case- and punctuation-insensitive form of a one-line placeholder: `< Média vynechána >`
    and `<média vynechána>` meet, so do `This message was deleted.` and `...deleted`."""
    text = text.strip().casefold()
    if text[:1] == "<" and text[-1:] == ">":
        text = "<" + text[1:-1].strip() + ">"
    return text.rstrip(".").strip()


def _table(kind: str, words: tuple[str, ...], bracketed: bool = False) -> dict[str, str]:
    table = {_norm(shadow(w)): kind for w in words}
    if bracketed:
        table |= {_norm(f"<{shadow(w)}>"): kind for w in words}
    return table


EXACT: dict[str, str] = {
    **_table("deleted", vocabulary.DELETED),
    **_table("call", vocabulary.MISSED_CALLS),
    **_table("location", vocabulary.LIVE_LOCATION),
    **_table("contact", vocabulary.CONTACT_OMITTED, bracketed=True),
    **_table("media_omitted", vocabulary.IOS_MEDIA_OMITTED, bracketed=True),
    **{_norm(f"<{shadow(w)}>"): "media_omitted" for w in vocabulary.ANDROID_MEDIA_OMITTED},
}
_EXACT_MAX = max(map(len, EXACT)) + 8  # room for spaces and a final "." around a placeholder
_DOCUMENT_MAX = 1000  # `NAME • 2 pages document omitted`: a file name and a page count
# `Missed voice call, Tap to call back`-like suffixes; "Missed group" alone is a text (hypothesis
# found that one).
_CALL = re.compile(r"missed (?:group )?(?:voice|video) call(?:[,.·•] .*|\.)?")
_DOCUMENT_OMITTED = tuple(_norm(shadow(w)) for w in vocabulary.DOCUMENT_OMITTED)
_EDITED = frozenset(_norm(w) for w in vocabulary.EDITED)


def _alternation(words: tuple[str, ...]) -> str:
    return "|".join(re.escape(shadow(w)) for w in sorted(words, key=len, reverse=True))


# `<attached: NAME>` and its translations; a caption or title may come first (iOS).
_IOS_ATTACHED = re.compile(
    rf"(?P<caption>.*?)< ?(?:{_alternation(vocabulary.IOS_ATTACHED)}): (?P<name>[^<>]+?) ?>",
    re.IGNORECASE,
)
_TURKISH_ATTACHED = re.compile(r"(?P<caption>.*?)<(?P<name>[^<>]+?) eklendi>")  # mtln/chat-export
_OLD_ATTACHED = re.compile(r"(?P<name>\S[^<>]*?) <attached>")  # Pustur's tests, 2015
_ANDROID_ATTACHED = re.compile(
    rf"(?P<name>\S.*?) \((?:{_alternation(vocabulary.ANDROID_FILE_ATTACHED)})\)", re.IGNORECASE
)
# `location: https://maps.google.com/?q=..` with the word in any language (whats_json accepts
# any word too), and one-line Foursquare venues `Venue (City): https://foursquare.com/v/..`.
_LOCATION = re.compile(
    r"(?:[^\s:]+:?|.+ \(.*\):) (?P<url>https?://(?:maps\.google\.\S+|www\.google\.\S+/maps\S*"
    r"|goo\.gl/maps\S*|maps\.app\.goo\.gl\S*|maps\.apple\.com\S*|foursquare\.com/\S+))"
)


class Kind(NamedTuple):
    kind: str
    attachment: str | None = None
    system_guess: bool = False


TEXT = Kind("text")
SYSTEM = Kind("system")


# The fast path: a line can only be a placeholder (EXACT or DOCUMENT_OMITTED) when its last two
# characters, casefolded, end one; casefold works character by character, so
# line[-2:].casefold()[-2:] == line.casefold()[-2:], which is how _norm() ends a line that does
# not end with "." or ">" (those take the full path).
_TAILS = frozenset(key[-2:] for key in (*EXACT, *_DOCUMENT_OMITTED))
# Last two characters seen that end no key of _TAILS once casefolded: a set look-up instead of a
# casefold for the next line ending alike (a few hundred pairs in a chat; bounded all the same).
_PLAIN_PAIRS: set[str] = set()
_PLAIN_PAIRS_MAX = 4096
_WHOLE_LINES = frozenset((*vocabulary.POLL_OPENERS, "null"))  # the fast path's exact lines


def _plain_pair(pair: str) -> bool:
    if pair.casefold()[-2:] in _TAILS:
        return False
    if len(_PLAIN_PAIRS) >= _PLAIN_PAIRS_MAX:
        _PLAIN_PAIRS.clear()
    _PLAIN_PAIRS.add(pair)
    return True


def classify(author: str | None, text: str, platform: str) -> Kind:
    """The kind of one entry from its author and its body, as exported."""
    if author is None:
        return SYSTEM
    first, newline, rest = text.partition("\n")
    line = shadow(first).strip()
    if not line:
        return Kind("empty") if not shadow(text).strip() else TEXT
    if (
        line[-1] not in ".>)"
        and (line[-2:] in _PLAIN_PAIRS or _plain_pair(line[-2:]))
        and "http" not in line
        # only "M" and "m" casefold to a text starting with "m" (a test checks all of Unicode)
        and (line[0] not in "Mm" or line[:7].casefold()[:7] != "missed ")
        and line not in _WHOLE_LINES
        and not (newline and "foursquare.com/" in rest)
        and not (platform == "ios" and text[:1] == LRM)
    ):
        return TEXT  # what the checks below return for such a line, in a fraction of the time
    if not newline and line == "null" and platform != "ios":
        return Kind("view_once")  # Android view-once media (whats_json)
    if len(line) <= _EXACT_MAX:
        key = _norm(line)
        kind = EXACT.get(key)
        if kind is not None:
            return Kind(kind)
        if key[:7] == "missed " and _CALL.fullmatch(key):
            return Kind("call")
        if line in vocabulary.POLL_OPENERS:
            return Kind("poll")
    last = line[-1]
    if last == ">" or last == ")":
        attached = _attachment(line)
        if attached is not None:
            return attached
    if len(line) <= _DOCUMENT_MAX and line.casefold().endswith(_DOCUMENT_OMITTED):
        return Kind("media_omitted", _document_name(line))
    if "http" in line and _LOCATION.fullmatch(line):
        return Kind("location")
    if newline and "foursquare.com/" in rest.rpartition("\n")[2]:
        return Kind("location")  # Android venues: name, address, URL on three lines
    if platform == "ios" and text.startswith(LRM):
        return Kind("system", system_guess=True)
    return TEXT


def _attachment(line: str) -> Kind | None:
    if line.endswith(">"):
        m = (
            _IOS_ATTACHED.fullmatch(line)
            or _TURKISH_ATTACHED.fullmatch(line)
            or _OLD_ATTACHED.fullmatch(line)
        )
    elif line.endswith(")"):
        m = _ANDROID_ATTACHED.fullmatch(line)
    else:
        return None
    if m is None:
        return None
    name = m["name"].strip()
    return Kind("contact" if name.lower().endswith(".vcf") else "attachment", name)


def _document_name(line: str) -> str | None:
    """`Report.pdf {LRM}document omitted`, `Report.pdf • {LRM}2 pages {LRM}document omitted`."""
    folded = line.casefold()
    for phrase in _DOCUMENT_OMITTED:
        if folded.endswith(phrase):
            name = line[: len(line) - len(phrase)].split(" • ")[0].strip()
            return name or None
    return None


def is_edited(text: str) -> bool:
    """`<This message was edited>` (or a translation) ends the body."""
    last = text.rpartition("\n")[2]
    if ">" not in last:
        return False
    last = shadow(last).rstrip()
    if not last.endswith(">"):
        return False
    return _norm(last[last.rfind("<") :])[1:-1].strip().rstrip(".") in _EDITED
