"""Where a message came from, in words every view and export uses: captured from WhatsApp, or
imported from a phone's "Export chat" file (imports/, issue 18), with the custodian whose phone
it came from, the file and its lines.

An imported message is a `Message` with `source == PHONE_EXPORT`; what the export said of it is in
`payload["import"]` (the design of imports/: custodian, author as exported, lines, local time,
declared zone, kind, flags). A captured message that a phone export repeats keeps its place and
gains `ImportedMessage` rows (created=False) that link the export's lines to it. Both are read
here, once, so that the transcript, search, PDF, EML, RSMF and CSV say the same thing.
"""

from dataclasses import dataclass
from typing import Any, Protocol

from messaging.models import PHONE_EXPORT, Conversation, ImportedMessage

MARK = "imported from a phone export"
EXPORT_KEY_PREFIX = "export:"  # the key of a conversation an export created (imports/)
# The parser's kinds (imports/parsing), as a reader is told them; the text follows as exported.
KIND_LABELS = {
    "deleted": "Deleted message (the export keeps only the notice)",
    "poll": "Poll",
    "location": "Location",
    "contact": "Contact card",
    "call": "Call",
    "media_omitted": "Media left out of the export",
    "view_once": "View-once media (never included in an export)",
    "empty": "Empty message",
    "attachment": "Attached file",
    "system": "System line",
}


@dataclass(frozen=True)
class Imported:
    """One entry of one phone export: the message as that export shows it."""

    custodian: str
    file_name: str
    first_line: int
    last_line: int
    local_time: str  # naive ISO 8601, as exported
    time_zone: str  # the zone declared at upload, in which local_time was read
    author: str | None  # as exported; None for an authorless (system) line
    kind: str
    flags: tuple[str, ...] = ()
    edited: bool = False
    parser_version: str = ""
    attachment: str | None = None  # the file name the export referenced, as written

    @property
    def kind_label(self) -> str:
        """What a kind other than plain text is, said before its text as exported."""
        return KIND_LABELS.get(self.kind, "")

    @property
    def lines(self) -> str:
        """`line 12`, or `lines 12-14` for a message that spans several."""
        if self.last_line > self.first_line:
            return f"lines {self.first_line}-{self.last_line}"
        return f"line {self.first_line}"

    @property
    def line_range(self) -> str:
        """`12` or `12-14` (CSV, headers: ASCII, no words)."""
        if self.last_line > self.first_line:
            return f"{self.first_line}-{self.last_line}"
        return str(self.first_line)

    @property
    def label(self) -> str:
        """The mark itself: "imported from a phone export · custodian … · <file> line N"."""
        return f"{MARK} · custodian {self.custodian} · {self.file_name} {self.lines}"

    @property
    def exported_time(self) -> str:
        """The wall-clock time the export printed and the zone it was read in."""
        return f"{self.local_time.replace('T', ' ')} ({self.time_zone})"

    @property
    def also(self) -> str:
        """How a message this export repeats says so: "also in the phone export of …"."""
        return f"also in the phone export of {self.custodian} ({self.file_name} {self.lines})"

    @property
    def warnings(self) -> list[str]:
        """Each flag the importer raised, as a sentence a reviewer can act on."""
        return [warning(flag, self) for flag in self.flags]


def warning(flag: str, entry: Imported) -> str:
    shown, zone = entry.local_time.replace("T", " "), entry.time_zone
    texts = {
        "dst-gap": f"the exported time {shown} does not exist in {zone} (the clocks went"
        " forward): read as the first moment after the gap",
        "dst-ambiguous": f"the exported time {shown} occurs twice in {zone} (the clocks went"
        " back): read as the first of the two",
        "impossible-time": "the exported time is impossible as written: read as best it could be",
        "date-invalid": "the exported date is not a real date under the file's date order",
        "system-guess": "taken for a system line by its shape: the export does not say so",
        "other-shape": "a line inside this message looks like a message header of another shape",
    }
    return texts.get(flag, f"import warning: {flag}")


class Stored(Protocol):
    """What `imported` reads of a message: a Message, or a search hit's row (search.Shown)."""

    @property
    def source(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def payload(self) -> Any: ...


def imported(message: Stored) -> Imported | None:
    """What the phone export said of `message`, if it was imported from one (else None)."""
    if message.source != PHONE_EXPORT:
        return None
    payload = message.payload if isinstance(message.payload, dict) else {}
    facts: dict[str, Any] = payload.get("import") or {}
    lines = facts.get("lines") or [0, 0]
    author = facts.get("author")
    return Imported(
        custodian=str(facts.get("custodian") or ""),
        file_name=str(facts.get("file_name") or ""),
        first_line=int(lines[0]),
        last_line=int(lines[-1]),
        local_time=str(facts.get("local_time") or ""),
        time_zone=str(facts.get("time_zone") or ""),
        author=None if author is None else str(author),
        kind=str(facts.get("kind") or message.type),
        flags=tuple(str(flag) for flag in facts.get("flags") or ()),
        edited=bool(facts.get("edited")),
        parser_version=str(facts.get("parser_version") or ""),
        attachment=None if facts.get("attachment") is None else str(facts["attachment"]),
    )


def linked(entry: ImportedMessage) -> Imported:
    """An export's line that repeats a message already archived (`entry.export` fetched)."""
    export = entry.export
    return Imported(
        custodian=export.custodian,
        file_name=export.file_name,
        first_line=entry.first_line,
        last_line=entry.last_line,
        local_time=entry.local_time,
        time_zone=export.time_zone,
        author=entry.author or None,
        kind=entry.kind,
        flags=tuple(entry.flags or ()),
    )


def author_name(entry: Imported) -> str:
    """How an author no participant was mapped to is named: as the export wrote them."""
    return f"{entry.author} (as named in the export)" if entry.author else ""


def chat_name(conversation: Conversation) -> str:
    """The chat's name for a conversation an export created ("" for any other)."""
    return chat_name_in(conversation.key)


def chat_name_in(key: str) -> str:
    """The chat's name in a conversation's key ("" for a key no export made)."""
    return key.removeprefix(EXPORT_KEY_PREFIX) if key.startswith(EXPORT_KEY_PREFIX) else ""
