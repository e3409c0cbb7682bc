"""The CSV export: one row per message, every conversation of the scope in one `messages.csv`,
for spreadsheets and for loading into other tools.

Encoding: UTF-8 with a byte-order mark and CRLF rows (RFC 4180). Excel reads a CSV without a BOM
in the machine's legacy code page, which turns Arabic, Hebrew, CJK and emoji into mojibake; the
BOM makes it read UTF-8, and Python (`utf-8-sig`), pandas and LibreOffice all skip it.

Formula injection (OWASP "CSV Injection"): a cell that starts with = + - @, a tab, CR or LF, or
their fullwidth and small forms (U+FF1D FF0B FF0D FF20, U+FE66 FE62 FE63 FE6B), is prefixed with a
single quote so no spreadsheet executes it. Every cell is treated the same, numbers like "-5"
included: a message text is evidence, not a number, and a rule without exceptions is one a reviewer
can check. A cell that already starts with a quote gets one too, so dropping one leading quote from
any quoted cell always gives the original text back. The columns we fill ourselves (seq, sizes,
times, hashes) never start with such a character; the client's "+number" does, and reads '+4477….

Provenance (review/provenance.py): `source` is "phone export" for a message imported from a
phone's "Export chat" file, with the `custodian` whose phone it came from, the `export_file` and
its `export_lines` ("12" or "12-14"), and "captured" for every other; `also_in_phone_exports`
lists the exports that repeat a message ("custodian Bob: chat.txt line 12", "; " between).
"""

import csv
import io
from collections.abc import Iterable

from access.spreadsheets import neutralise
from messaging.models import Message
from review.transcript import Row

from .eml import attachment_name, iso, moment, original_filename, reaction_emoji
from .source import Part, Source
from .target import Target

NAME = "messages.csv"
COLUMNS = [
    "conversation_id",
    "channel",
    "client_number",
    "client_name",
    "ledger_seq",
    "leaf_hash",
    "wamid",
    "sent_at_utc",
    "direction",
    "sender",
    "type",
    "text",
    "original_text",
    "edit_count",
    "edited_at_utc",
    "deleted_at_utc",
    "reply_to_wamid",
    "forwarded",
    "reactions",
    "status",
    "attachment_name",
    "attachment_file",
    "attachment_mime",
    "attachment_size",
    "attachment_sha256",
    "attachment_outcome",
    "source",
    "custodian",
    "export_file",
    "export_lines",
    "also_in_phone_exports",
]


def write(source: Source, target: Target, prefix: str = "") -> None:
    """messages.csv: a header row, then each conversation's messages in time order."""
    with target.open(prefix + NAME) as out:
        out.write("\ufeff".encode())
        out.write(encode([COLUMNS]))
        for part in source.parts():
            for chunk in part.chunks():
                out.write(encode(cells(part, row) for row in chunk))


def encode(rows: Iterable[list[str]]) -> bytes:
    """Rows of cells as UTF-8 CSV text with CRLF row ends (without the BOM)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue().encode()


def cells(part: Part, row: Row) -> list[str]:
    """One message as the CSV's cells, each neutralised."""
    message, convo = row.message, part.conversation
    client = convo.participant
    values = [
        str(convo.pk),
        convo.channel.name,
        f"+{client.wa_id}" if client is not None and client.wa_id else "",
        part.name,
        str(message.entry_id),
        bytes(message.entry.leaf_hash).hex(),
        message.wamid,
        iso(moment(message)),
        "outbound" if message.direction == "out" else "inbound",
        _sender(part, row),
        message.type,
        row.current_text,
        message.text if row.edits else "",
        str(len(row.edits)),
        iso(moment(row.edits[-1])) if row.edits else "",
        iso(moment(row.revoked)) if row.revoked is not None else "",
        message.context_wamid,
        ("many times" if message.frequently_forwarded else "yes") if message.forwarded else "",
        "; ".join(_reaction(r) for r in row.reactions),
        row.status,
        *_attachment(row),
        *_provenance(row),
    ]
    return [neutralise(value) for value in values]


def _provenance(row: Row) -> list[str]:
    """source, custodian, export_file, export_lines, also_in_phone_exports."""
    also = "; ".join(f"custodian {e.custodian}: {e.file_name} {e.lines}" for e in row.also_in)
    entry = row.imported
    if entry is None:
        return ["captured", "", "", "", also]
    return ["phone export", entry.custodian, entry.file_name, entry.line_range, also]


def _sender(part: Part, row: Row) -> str:
    message = row.message
    if message.direction == "out":
        return part.conversation.channel.name
    sender = message.sender
    number = f"+{sender.wa_id}" if sender is not None and sender.wa_id else ""
    return row.sender_name or number or (sender.user_id if sender is not None else "")


def _reaction(reaction: Message) -> str:
    who = "firm" if reaction.direction == "out" else "client"
    return f"{reaction_emoji(reaction)} by {who} at {iso(moment(reaction))}"


def _attachment(row: Row) -> list[str]:
    """Original file name, the name in the EML/RSMF exports, MIME type, size, SHA-256, outcome."""
    attachment = row.attachment
    if attachment is None:
        return ["", "", "", "", "", ""]
    stored = attachment.file
    outcome = attachment.outcome + (f": {attachment.reason}" if attachment.reason else "")
    if stored is None:
        return [original_filename(row), "", "", "", "", outcome]
    return [
        original_filename(row),
        attachment_name(row),
        stored.mime_type,
        str(stored.size),
        stored.sha256,
        outcome,
    ]
