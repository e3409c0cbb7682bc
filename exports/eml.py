"""The EML export: one RFC 5322 message per WhatsApp message, so that any e-mail archive,
review tool or mail client can take a conversation in as ordinary mail.

Each file is `eml/<conversation>/<ledger seq>.eml` (in the evidence bundle, inside `eml.zip`).
Headers carry who, when and the thread (Message-ID and In-Reply-To derived from the wamid, so
replies thread even across exports) plus the evidence (ledger seq, leaf hash); the text body
carries the message and everything that happened to it afterwards (edits with their history, a
deletion, reactions, delivery statuses); stored media travel as MIME parts with their exact
bytes. `message_bytes()` renders one message and is what the archive journal (sending every
message to an archive mailbox) reuses.

A message imported from a phone export (review/provenance.py) says so in a header,
`X-ClientWindow-Source: phone-export; custodian="…"; file="…"; lines=N`, and in the first line of
its body; a message an export repeats lists it in `X-ClientWindow-Also-In` (same parameters).

Also here, because the RSMF container is an e-mail too (exports/rsmf.py): the addresses given to
clients and the firm, attachment and folder names, and checked media reads.
"""

import hashlib
import json
import re
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime, formataddr

from messaging.media import open_media
from messaging.models import Channel, MediaFile, Message, Participant
from review.provenance import Imported, chat_name
from review.transcript import Row

from .source import Part, Source, pseudonym
from .target import Target, safe_component

# CRLF line ends, as RFC 5322 defines a message; non-ASCII headers become RFC 2047 words.
POLICY = policy.SMTP
# RFC 2606 reserves .invalid: these addresses can never reach or bounce from a real mailbox,
# yet every mail tool accepts them, so a client's number can be shown as an address safely.
DOMAIN = "whatsapp.invalid"
ID_DOMAIN = "clientwindow.invalid"
# Control characters (CR/LF above all) would let a hostile profile name forge header lines.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# RFC 5322's line: a header folds at white space into lines of at most 78 characters.
LINE = 78
# What makes a display name a quoted string (RFC 5322 3.2.3's specials).
_SPECIALS = frozenset('()<>[]:;@\\,."')
_NOT_DIGIT = re.compile(r"\D")
_MIME = re.compile(r"^[A-Za-z0-9][\w.+-]*/[\w.+-]+$")
# Fixed, so that names do not depend on the machine's mime.types file (the bundle uses it too).
EXTENSIONS = {
    "application/pdf": "pdf",
    "application/msword": "doc",
    "application/vnd.ms-excel": "xls",
    "application/vnd.ms-powerpoint": "ppt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/zip": "zip",
    "text/plain": "txt",
    "text/csv": "csv",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "audio/aac": "aac",
    "audio/amr": "amr",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/ogg": "ogg",
    "video/3gpp": "3gp",
    "video/mp4": "mp4",
}


def write(source: Source, target: Target, prefix: str = "") -> None:
    """One .eml per message of the scope, in one folder per conversation."""
    for part in source.parts():
        folder = conversation_folder(part)
        for row in part.rows():
            with target.open(f"{prefix}eml/{folder}/{row.message.entry_id}.eml") as out:
                out.write(message_bytes(source, part, row))


def message_bytes(source: Source | None, part: Part, row: Row) -> bytes:
    """One message as RFC 5322 bytes; the same row always gives the same bytes. With a source,
    the log origin and the checkpoint the export proves against are named as well."""
    message, channel = row.message, part.conversation.channel
    mail = EmailMessage(policy=POLICY)
    sender, recipient = _correspondents(part, row)
    mail["From"], mail["To"] = header("From", sender), header("To", recipient)
    mail["Date"] = format_datetime(moment(message), usegmt=True)
    mail["Subject"] = header("Subject", one_line(f"WhatsApp: {part.title}"))
    mail["Message-ID"] = message_id(channel, message.wamid)
    if message.context_wamid:
        mail["In-Reply-To"] = mail["References"] = message_id(channel, message.context_wamid)
    for name, value in _evidence_headers(source, row):
        mail[name] = header(name, value)
    mail.set_content(text_body(part, row), cte="quoted-printable")
    attachment = row.attachment
    if attachment is not None and attachment.file is not None:
        maintype, subtype = mime_type(attachment.file).split("/")
        data = read_media(attachment.file)
        mail.add_attachment(data, maintype, subtype, filename=attachment_name(row))
        # Deterministic, and safe: quoted-printable and base64 bodies can never contain "=_".
        mail.set_boundary(f"=_clientwindow_{hashlib.sha256(data).hexdigest()[:24]}")
    return mail.as_bytes()


def message_id(channel: Channel, wamid: str) -> str:
    """The Message-ID of a WhatsApp message: a hash of the business number's id and the wamid.

    A wamid is unique only per business number and may hold characters a Message-ID may not,
    so it is hashed with the number's id. Being derived, a reply's In-Reply-To is computed from
    its context wamid alone: threads rebuild even when the quoted message is in another export.
    """
    digest = hashlib.sha256(f"{channel.phone_number_id}:{wamid}".encode()).hexdigest()
    return f"<{digest[:32]}@{ID_DOMAIN}>"


def _correspondents(part: Part, row: Row) -> tuple[Address, Address]:
    """(From, To): the client (or group member) and the firm, in the message's direction."""
    convo = part.conversation
    firm = firm_address(convo.channel)
    if convo.participant is None and not convo.group_id:  # an export's chat, its other unmapped
        if row.message.direction == "out":
            return firm, person_address(None, chat_name(convo) or part.name)
        return person_address(row.message.sender, row.sender_name), firm
    if convo.group_id:
        group = Address(
            one_line(f"WhatsApp group {convo.group_id}"),
            addr_spec=f"group-{_local(convo.group_id)}@{DOMAIN}",
        )
        if row.message.direction == "out":
            return firm, group
        return person_address(row.message.sender, row.sender_name), group
    client = person_address(convo.participant, part.name)
    return (firm, client) if row.message.direction == "out" else (client, firm)


def person_address(person: Participant | None, name: str) -> Address:
    """`Name <+wa_id@whatsapp.invalid>`; a user known only by user id gets `user-<id>@`."""
    if person is None:
        return Address(one_line(name) or "Unknown sender", addr_spec=f"unknown@{DOMAIN}")
    local = f"+{person.wa_id}" if person.wa_id else f"user-{_local(person.user_id)}"
    return Address(one_line(name), addr_spec=f"{local}@{DOMAIN}")


def firm_address(channel: Channel) -> Address:
    """The firm's WhatsApp number as `Channel name <+number@whatsapp.invalid>`."""
    local = firm_number(channel) or f"channel-{_local(channel.phone_number_id)}"
    return Address(one_line(channel.name), addr_spec=f"{local}@{DOMAIN}")


def firm_number(channel: Channel) -> str:
    """The channel's number in E.164 form ("+442079460000"), or "" if it has none."""
    digits = _NOT_DIGIT.sub("", channel.display_number)
    return f"+{digits}" if digits else ""


def _local(text: str) -> str:
    """A dot-atom local part (no leading, trailing or doubled dots) from any identifier."""
    return re.sub(r"\.{2,}", ".", safe_component(text, fallback="unknown", limit=56))


def _evidence_headers(source: Source | None, row: Row) -> list[tuple[str, str]]:
    message = row.message
    headers = [
        ("X-ClientWindow-Ledger-Seq", str(message.entry_id)),
        ("X-ClientWindow-Leaf-Hash", bytes(message.entry.leaf_hash).hex()),
        ("X-ClientWindow-Sealed-At", iso(message.entry.sealed_at)),
        ("X-ClientWindow-Wamid", one_line(message.wamid)),
        ("X-ClientWindow-Direction", "outbound" if message.direction == "out" else "inbound"),
        ("X-ClientWindow-Type", one_line(message.type) or "unknown"),
    ]
    if message.direction == "out":  # statuses describe delivery of what the firm sent
        headers.append(("X-ClientWindow-Status", row.status or "none"))
    if row.revoked is not None:
        headers.append(("X-ClientWindow-Deleted-At", iso(moment(row.revoked))))
    if row.edits:
        headers.append(("X-ClientWindow-Edited-At", iso(moment(row.edits[-1]))))
    if row.attachment is not None and row.attachment.file is not None:
        headers.append(("X-ClientWindow-Attachment-SHA256", row.attachment.file.sha256))
    if row.imported is not None:
        headers.append(("X-ClientWindow-Source", "phone-export; " + export_params(row.imported)))
    headers += [
        ("X-ClientWindow-Also-In", "phone-export; " + export_params(e)) for e in row.also_in
    ]
    if source is not None:
        headers.append(("X-ClientWindow-Log-Origin", one_line(source.origin)))
        headers.append(("X-ClientWindow-Checkpoint-Tree-Size", str(source.tree_size)))
    return headers


def export_params(entry: Imported) -> str:
    """`custodian="…"; file="…"; lines=12-14`: where a phone export has a message."""
    return "; ".join(
        [
            f"custodian={_quoted(entry.custodian)}",
            f"file={_quoted(entry.file_name)}",
            f"lines={entry.line_range}",
        ]
    )


def _quoted(text: str) -> str:
    return '"' + one_line(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_body(part: Part, row: Row) -> str:
    """The message as a reader needs it: deletion first, then the text, then its history."""
    message = row.message
    lines: list[str] = []
    if row.imported is not None:
        lines += [
            f"[{row.imported.label[0].upper()}{row.imported.label[1:]}: not captured from"
            " WhatsApp; the text is as the phone exported it.]",
            "",
        ]
    if row.revoked is not None:
        lines += [
            f"[Deleted by the sender at {iso(moment(row.revoked))}. "
            "The original content is kept below as evidence.]",
            "",
        ]
    lines.append(row.current_text or f"({message.type or 'message'} without text)")
    if not message.text and row.body is not None:
        content = json.dumps(row.body, sort_keys=True, ensure_ascii=False, indent=1)
        lines += ["", "Content as WhatsApp delivered it:", content]
    lines += ["", "----", *_facts(part, row)]
    return "\n".join(lines) + "\n"


def _facts(part: Part, row: Row) -> list[str]:
    message = row.message
    who = "sent by the firm" if message.direction == "out" else "received from the client"
    facts = [f"WhatsApp {message.type} message {who} at {iso(moment(message))}."]
    if row.imported is not None:
        facts += _import_facts(row.imported)
    facts += [f"{e.also[0].upper()}{e.also[1:]}." for e in row.also_in]
    if message.forwarded:
        facts.append("Forwarded" + (" many times." if message.frequently_forwarded else "."))
    if message.context_wamid:
        quoted = row.quoted
        facts.append(
            f"Reply to {message.context_wamid}: {_quote(quoted.text)}"
            if quoted is not None
            else f"Reply to {message.context_wamid}, a message not in this archive."
        )
    if row.edits:
        facts.append(f"Edited {len(row.edits)} time(s). Versions, oldest first:")
        facts.append(f"  1. {iso(moment(message))}: {message.text}")
        facts += [f"  {n}. {iso(moment(e))}: {e.text}" for n, e in enumerate(row.edits, 2)]
    facts += [
        f"Reaction {reaction_emoji(r)} by {_reactor(part, r)} at {iso(moment(r))}."
        for r in row.reactions
    ]
    if message.direction == "out":
        history = "; ".join(f"{s.status} {iso(s.occurred_at)}" for s in row.statuses)
        facts.append(f"Status: {row.status or 'none'}" + (f" ({history})." if history else "."))
    facts.append(attachment_note(row))
    facts.append(
        f"Ledger: seq {message.entry_id}, leaf hash {bytes(message.entry.leaf_hash).hex()}, "
        f"sealed at {iso(message.entry.sealed_at)}."
    )
    return [fact for fact in facts if fact]


def _import_facts(entry: Imported) -> list[str]:
    facts = [
        f"Exported time {entry.exported_time}: the time above is read from it.",
        f"Author as exported: {entry.author}." if entry.author else "",
        "Marked as edited in the export." if entry.edited else "",
    ]
    return facts + [f"Import warning: {warning}." for warning in entry.warnings]


def _quote(text: str) -> str:
    return "“" + (text if len(text) <= 200 else text[:199] + "…") + "”"


def _reactor(part: Part, reaction: Message) -> str:
    if reaction.direction == "out":
        return "the firm"
    person = reaction.sender
    if name := pseudonym(person):  # another person in a subject access export (source.py)
        return f"{name} (client)"
    if person is not None and person.pk == part.conversation.participant_id and part.name:
        return f"{part.name} (client)"
    return f"+{person.wa_id} (client)" if person is not None and person.wa_id else "the client"


def reaction_emoji(reaction: Message) -> str:
    body = reaction.payload.get("reaction") if isinstance(reaction.payload, dict) else None
    return str(body.get("emoji", "")) if isinstance(body, dict) else ""


def attachment_note(row: Row) -> str:
    """A line on the message's media: what was stored and under which name, or why not."""
    attachment = row.attachment
    if attachment is None:
        return ""
    if attachment.file is None:
        reason = f" ({attachment.reason})" if attachment.reason else ""
        return f"{row.message.type.capitalize()} not archived: {attachment.outcome}{reason}."
    stored = attachment.file
    original = original_filename(row)
    named = f"“{original}”, " if original else ""
    return (
        f"Attachment {named}{stored.mime_type}, {stored.size} bytes, SHA-256 {stored.sha256}, "
        f"attached as {attachment_name(row)}."
    )


def original_filename(row: Row) -> str:
    """The file name the sender gave (documents only), as sent: hostile until made safe."""
    body = row.body
    return str(body.get("filename", "")) if isinstance(body, dict) else ""


def attachment_name(row: Row) -> str:
    """A safe, unique file name for a message's stored media: `<seq>-<name>.<ext>`."""
    stored = row.attachment.file if row.attachment is not None else None
    extension = "." + EXTENSIONS.get(mime_type(stored) if stored else "", "bin")
    original = original_filename(row)
    base = safe_component(original, fallback="", limit=60) if original else ""
    if not base:
        base = safe_component(row.message.type, fallback="media", limit=20) + extension
    elif "." not in base:
        base += extension
    return f"{row.message.entry_id}-{base}"


def mime_type(stored: MediaFile) -> str:
    """The stored file's MIME type without parameters, or application/octet-stream (also for
    multipart/ and message/, which a reader would open as structure rather than as a file)."""
    value = stored.mime_type.split(";", 1)[0].strip().lower()
    container = value.startswith(("multipart/", "message/"))
    return value if _MIME.match(value) and not container else "application/octet-stream"


def read_media(stored: MediaFile) -> bytes:
    """The stored bytes, checked against the SHA-256 sealed with them; ValueError otherwise:
    an export must never hand over media that differs from what the archive sealed."""
    with open_media(stored) as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != stored.sha256:
        raise ValueError(f"stored media {stored.sha256} does not match its SHA-256")
    return data


def conversation_folder(part: Part) -> str:
    """`<conversation id>-<number or group>-<name>`, reduced to safe characters."""
    convo = part.conversation
    who = convo.group_id or (convo.participant.wa_id if convo.participant else "")
    return safe_component(f"{convo.pk}-{who}-{part.name}", fallback=str(convo.pk))


def moment(message: Message) -> datetime:
    """When a message was sent, or, if WhatsApp gave no time, when the archive sealed it."""
    return message.sent_at or message.entry.sealed_at


def iso(when: datetime) -> str:
    """ISO 8601 in UTC with a Z; microseconds only when there are some."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def written_as_is(text: str) -> bool:
    """Whether the email package writes `text` into a header faithfully, in lines of at most
    LINE: plain ASCII, no "=?", and every word short enough for a folded line. Otherwise, on
    Python 3.11:

    - "=?" starts an RFC 2047 encoded word, which readers decode: a profile name made of
      encoded words shows as other text, and the parser decodes it and then writes it back
      decoded and unquoted, so such a name could forge a From;
    - a non-ASCII name long enough to fold is folded at its own spaces between encoded words,
      where readers drop the space ("José María" reads "JoséMaría");
    - a name with a word longer than a line is folded with an empty line after it, which ends
      the header block (the rest of the headers become the body);
    - email.utils.formataddr writes a non-ASCII name as one encoded word of any length (a
      200-character name made a From line of 1,073 octets; no SMTP server takes one over 998).
    """
    return text.isascii() and "=?" not in text and all(map(_fits, text.split()))


def _fits(word: str) -> bool:
    """A word fits a folded line after its space even quoted, its quotes and backslashes
    escaped."""
    return 1 + len(word) + word.count('"') + word.count("\\") + 2 <= LINE


def _displayed_as_is(name: str) -> bool:
    """written_as_is() for an address's display name. A name holding a special is written as
    one quoted string, which Python 3.11 folds as one word: longer than a line, it is written
    without its quotes (`From: a \\b <x@y>`, whose address a reader then cannot find)."""
    return written_as_is(name) and (_SPECIALS.isdisjoint(name) or _fits(name))


def encoded_words(text: str) -> str:
    """`text` as RFC 2047 encoded words (UTF-8, B or Q, the shorter) of at most 75 characters,
    one space apart: a reader joins adjacent encoded words without the space, and a header
    folds at it. Every space of `text` is inside a word."""
    return " ".join(Header(text, "utf-8", maxlinelen=75).encode(splitchars=" ").split())


class Written(str):
    """A header value made here (encoded words, an address in angle brackets), which the email
    package is to write as it is, folded between words only."""

    name: str

    def __new__(cls, name: str, value: str) -> "Written":
        written = super().__new__(cls, value)
        written.name = name
        return written

    def fold(self, *, policy: Policy) -> str:
        width = policy.max_line_length or 0
        folded = Header(str(self), header_name=self.name, maxlinelen=width).encode(
            splitchars=" ", linesep=policy.linesep
        )
        return f"{self.name}: {folded}{policy.linesep}"


def header(name: str, value: str | Address) -> str | Address | Written:
    """What to set header `name` to so that every reader reads `value` back: `value` itself when
    the email package writes it faithfully (written_as_is), else its text as encoded words."""
    if isinstance(value, Address):
        if _displayed_as_is(value.display_name):
            return value
        return Written(name, mailbox(value.display_name, value.addr_spec))
    return value if written_as_is(value) else Written(name, header_text(value))


def header_bytes(name: str, value: str | Address) -> bytes:
    """One header as folded RFC 5322 bytes, faithful as header() makes it (the RSMF container
    writes its headers one by one)."""
    made = header(name, value)
    folded = made if isinstance(made, Written) else POLICY.header_factory(name, made)
    return POLICY.fold_binary(name, folded)


def mailbox(display: str, address: str) -> str:
    """`display <address>` as ASCII for the legacy email API (Django's mail), as header() would
    write it: quoted where RFC 5322 needs it, or as encoded words."""
    if _displayed_as_is(display):
        return formataddr((display, address))
    return f"{encoded_words(display)} <{address}>"


def header_text(text: str) -> str:
    """`text` for an unstructured header of the legacy email API, as header() would write it
    (Django encodes non-ASCII text itself, but not ASCII holding "=?")."""
    return text if written_as_is(text) else encoded_words(text)
