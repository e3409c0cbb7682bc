"""WhatsApp "Export chat" parser (issue 18): pure Python, no Django, importable by anything.

    with ExportFile.open(path, upload_name) as export:
        detected = detect(export)                       # first pass: shape and date order
        for entry in parse(export, detected, detected.date_order or asked_order):
            ...

Contract: /tmp/spec/parser-api.md. The format and its traps: shared WHATSAPP-CHAT-EXPORT.md.
"""

from imports.parsing.detect import ORDERS, Detected, detect
from imports.parsing.entries import FLAGS, KINDS, Entry, parse, split_author
from imports.parsing.headers import shadow
from imports.parsing.source import (
    EXPANDED_CAP,
    MAX_LINE_CHARS,
    ExportError,
    ExportFile,
    Member,
    chat_name_from,
)

PARSER_VERSION = "1.0"

__all__ = [
    "EXPANDED_CAP",
    "FLAGS",
    "KINDS",
    "MAX_LINE_CHARS",
    "ORDERS",
    "PARSER_VERSION",
    "Detected",
    "Entry",
    "ExportError",
    "ExportFile",
    "Member",
    "chat_name_from",
    "detect",
    "parse",
    "shadow",
    "split_author",
]
