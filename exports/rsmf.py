"""The RSMF export: Relativity Short Message Format 2.0, what e-discovery platforms load chats
from (the spec as we follow it: ../shared/RSMF.md, summarised below).

One `.rsmf` file per conversation per UTC day, split again past `MAX_EVENTS` events (Relativity's
recommended ceiling); every slice of a conversation shares one `eventcollectionid`. A file is an
RFC 5322 message: `X-RSMF-Version` first, the roll-up headers, a plain-text transcript (which
Relativity indexes as extracted text) and exactly one attachment, `rsmf.zip`: the manifest
`rsmf_manifest.json` and the media by bare file name, with fixed ZIP timestamps so the same
source gives the same bytes. Each manifest says `version: 2.0.0` yet fills every field 1.0
required, and is validated against the vendored official schema (exports/schemas/) and for
internal references before it is written: an invalid file is never handed over.

A message imported from a phone export (review/provenance.py) carries its source in the event's
`custom` fields ("Source": "phone export", "Custodian", "Export file", "Export lines", "Exported
time", "Author as exported", "Import warning"), which RSMF 2.0 keeps for exactly such facts, and
its transcript line says "imported from a phone export"; an author the export names but no number
was mapped to is a participant of their own, by that name. A message an export repeats lists it
under "Also in phone export".

Memory: events and transcript lines of one file (at most `MAX_EVENTS`); the ZIP spools to disk.
The files are `rsmf/<conversation>/<day>.rsmf`; the evidence bundle nests them in `rsmf.zip`.
"""

import base64
import hashlib
import json
import zipfile
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import MIMEPart
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from jsonschema import Draft7Validator, FormatChecker

from messaging.media import open_media
from messaging.models import Message, Participant
from review.provenance import Imported
from review.transcript import Row

from .eml import (
    DOMAIN,
    POLICY,
    attachment_name,
    attachment_note,
    conversation_folder,
    firm_address,
    firm_number,
    header_bytes,
    iso,
    moment,
    one_line,
    person_address,
    reaction_emoji,
)
from .source import Part, Source, pseudonym
from .target import ZIP_TIME, Target

VERSION = "2.0.0"
MAX_EVENTS = 10_000  # per file, Relativity's recommendation
MANIFEST = "rsmf_manifest.json"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "rsmf_schema_2_0_0.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text("utf-8"))
# jsonschema checks "date-time" only with an optional package we do not ship; check it here.
FORMATS = FormatChecker(["idn-email"])


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return "T" in value and datetime.fromisoformat(value).tzinfo is not None


FORMATS.checks("date-time", raises=ValueError)(_is_date_time)
VALIDATOR = Draft7Validator(SCHEMA, format_checker=FORMATS)
RECEIPTS = {"delivered": "delivered", "read": "read", "played": "read"}


def write(
    source: Source, target: Target, prefix: str = "", *, max_events: int = MAX_EVENTS
) -> None:
    """One .rsmf per conversation per UTC day (and per `max_events`), in a folder each."""
    for part in source.parts():
        folder = f"{prefix}rsmf/{conversation_folder(part)}"
        per_day: dict[str, int] = {}
        current: _Slice | None = None
        for row in part.rows():
            day = moment(row.message).astimezone(UTC).date().isoformat()
            if current is None or current.day != day or len(current.events) >= max_events:
                if current is not None:
                    current.finish(target)
                n = per_day[day] = per_day.get(day, 0) + 1
                name = f"{folder}/{day}.rsmf" if n == 1 else f"{folder}/{day}-{n}.rsmf"
                current = _Slice(source, part, day, name)
            current.add(row)
        if current is not None:
            current.finish(target)


def collection_id(source: Source, part: Part) -> str:
    """Shared by every slice of a conversation, in this and any later export of it."""
    return f"{source.origin}/conversation/{part.conversation.pk}"


class _Slice:
    """One .rsmf file being built: participants met, events, transcript lines, the ZIP."""

    def __init__(self, source: Source, part: Part, day: str, name: str) -> None:
        self.source, self.part, self.day, self.name = source, part, day, name
        self.people: dict[str, dict[str, Any]] = {}
        self.addresses: dict[str, Address] = {}
        self.events: list[dict[str, Any]] = []
        self.ids: set[str] = set()
        self.lines: list[str] = []
        self.members: list[str] = []
        self.span: list[datetime] = []  # the earliest and latest event times
        self.spool: IO[bytes] = SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115
        self.zip = zipfile.ZipFile(self.spool, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        channel = part.conversation.channel
        self.firm = self._register(
            f"firm-{channel.phone_number_id}",
            channel.name,
            firm_number(channel) or channel.phone_number_id,
            firm_address(channel),
            [("Role", "firm (custodian)"), ("WhatsApp phone number id", channel.phone_number_id)],
        )
        # A group has no one client: its members are registered as they appear.
        # So has an export's chat whose other side is mapped to no number: its authors by name.
        convo = part.conversation
        several = bool(convo.group_id) or convo.participant is None
        self.client = "" if several else self.person(convo.participant, part.name)

    # ------------------------------------------------------------------ participants

    def _register(
        self, pid: str, name: str, account: str, address: Address, custom: list[tuple[str, str]]
    ) -> str:
        entry = self.people.get(pid)
        if entry is None:
            entry = {"id": pid, "display": one_line(name) or account, "account_id": account}
            entry["custom"] = [{"name": k, "value": v} for k, v in custom if v]
            self.people[pid], self.addresses[pid] = entry, address
        elif name and entry["display"] == account:  # a name learnt later beats the number
            entry["display"] = one_line(name) or account
            self.addresses[pid] = address
        return pid

    def person(self, person: Participant | None, name: str) -> str:
        """The participant id of a client or group member, registering them on first sight."""
        if person is None:
            return self._register("unknown", name, "unknown", person_address(None, name), [])
        account = f"+{person.wa_id}" if person.wa_id else person.user_id
        pid = f"wa-{person.wa_id}" if person.wa_id else f"user-{person.user_id}"
        name = name or pseudonym(person)  # a stand-in is named even where no name is given
        address = person_address(person, name)
        return self._register(pid, name, account, address, [("Role", "client")])

    def _recipient(self, wa_id: str) -> str:
        if self.client:
            return self.client  # in a direct conversation the client is the only recipient
        if not wa_id:
            return self.person(None, "")
        redaction = self.source.redaction
        if redaction is not None and wa_id in redaction.stand_ins:  # already pseudonymised
            return self.person(redaction.stand_ins[wa_id], "")
        address = Address(addr_spec=f"+{wa_id}@{DOMAIN}")
        return self._register(f"wa-{wa_id}", "", f"+{wa_id}", address, [("Role", "client")])

    def named(self, entry: Imported, name: str) -> str:
        """The participant id of an author a phone export names, no number mapped to them (or of
        the export's authorless system lines)."""
        author = entry.author or ""
        pid = "export-" + hashlib.sha256(author.encode()).hexdigest()[:16]
        shown = name or author or "System line of a phone export"
        address = person_address(None, shown)
        role = "named in a phone export, no number mapped" if author else "system line"
        self._register(pid, shown, "", address, [("Role", role), ("Name as exported", author)])
        self.people[pid].pop("account_id", None)  # no platform id: a name is all there is
        return pid

    def _author(self, message: Message, name: str = "", entry: Imported | None = None) -> str:
        if message.direction == "out":
            return self.firm
        if not self.client and message.sender is None and entry is not None:
            return self.named(entry, name)
        return self.client or self.person(message.sender, name)

    # ------------------------------------------------------------------ events

    def add(self, row: Row) -> None:
        message = row.message
        event: dict[str, Any] = {
            "id": message.wamid,
            "type": "message",
            "participant": self._author(message, row.sender_name, row.imported),
            "conversation": self.conversation_id,
            "timestamp": iso(moment(message)),
            "direction": "outgoing" if message.direction == "out" else "incoming",
            "body": row.current_text,
        }
        if message.context_wamid in self.ids:
            event["parent"] = message.context_wamid
        if row.revoked is not None:
            event["deleted"] = True  # the body stays: nothing is dropped
        event.update(self._history(row))
        attachment = self._attach(row)
        if attachment is not None:
            event["attachments"] = [attachment]
        event["custom"] = [{"name": k, "value": v} for k, v in self._custom(row) if v]
        self.events.append(event)
        self.ids.add(message.wamid)
        when = moment(message)
        self.span = [min(self.span[0], when), max(self.span[1], when)] if self.span else [when] * 2
        self._transcribe(event, row)

    @property
    def conversation_id(self) -> str:
        return f"whatsapp-{self.part.conversation.pk}"

    def _history(self, row: Row) -> dict[str, Any]:
        """Reactions aggregated per emoji, edits as previous → new, delivery receipts."""
        extra: dict[str, Any] = {}
        reactions: dict[str, list[str]] = {}
        for reaction in row.reactions:
            reactions.setdefault(reaction_emoji(reaction), []).append(self._author(reaction))
        if reactions:
            extra["reactions"] = [
                {"value": emoji, "count": len(who), "participants": who}
                for emoji, who in reactions.items()
            ]
        previous = row.message.text
        edits = []
        for edit in row.edits:
            edits.append(
                {
                    "participant": self._author(edit),
                    "timestamp": iso(moment(edit)),
                    "previous": previous,
                    "new": edit.text,
                }
            )
            previous = edit.text
        if edits:
            extra["edits"] = edits
        receipts = [
            {
                "participant": self._recipient(status.recipient_id),
                "timestamp": iso(status.occurred_at),
                "action": RECEIPTS[status.status],
            }
            for status in row.statuses
            if status.status in RECEIPTS
        ]
        if receipts:
            extra["read_receipts"] = receipts
        return extra

    def _attach(self, row: Row) -> dict[str, Any] | None:
        """Copies stored media into the ZIP, checked against its sealed SHA-256."""
        stored = row.attachment.file if row.attachment is not None else None
        if stored is None:
            return None
        name = attachment_name(row)
        info = self._member(name, zipfile.ZIP_STORED)  # media is compressed already
        info.file_size = stored.size  # lets zipfile choose ZIP64 up front for large media
        digest = hashlib.sha256()
        with open_media(stored) as media, self.zip.open(info, "w") as member:
            while chunk := media.read(1 << 20):
                digest.update(chunk)
                member.write(chunk)
        if digest.hexdigest() != stored.sha256:
            raise ValueError(f"stored media {stored.sha256} does not match its SHA-256")
        # The safe name, not the sender's: viewers may save under `display`. The original
        # name stays in the event's custom "Attachment" note.
        return {"id": name, "display": name, "size": stored.size}

    def _member(self, name: str, compression: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
        info.compress_type = compression
        info.external_attr = 0o644 << 16
        info.create_system = 3  # the same bytes whichever system writes them
        self.members.append(name)
        return info

    def _custom(self, row: Row) -> list[tuple[str, str]]:
        message, entry = row.message, row.message.entry
        custom = [
            ("WhatsApp message id", message.wamid),
            ("WhatsApp type", message.type),
            ("Ledger seq", str(message.entry_id)),
            ("Leaf hash", bytes(entry.leaf_hash).hex()),
            ("Sealed at", iso(entry.sealed_at)),
        ]
        if message.sent_at is None:
            custom.append(("Timestamp", "when sealed: WhatsApp gave no time"))
        if message.forwarded:
            custom.append(("Forwarded", "many times" if message.frequently_forwarded else "yes"))
        if message.context_wamid and message.context_wamid not in self.ids:
            where = "outside this file" if row.quoted is not None else "not in the archive"
            custom.append(("Reply to", f"{message.context_wamid} ({where})"))
            custom.append(("Quoted text", row.quoted.text if row.quoted is not None else ""))
        if row.revoked is not None:
            custom.append(("Deleted at", iso(moment(row.revoked))))
        if message.direction == "out":
            custom.append(("Delivery status", row.status or "none"))
        if not message.text and row.body is not None:
            custom.append(("Content", json.dumps(row.body, sort_keys=True, ensure_ascii=False)))
        custom.append(("Attachment", attachment_note(row)))
        if row.imported is not None:
            custom += _import_custom(row.imported)
        custom += [("Also in phone export", e.also.removeprefix("also in ")) for e in row.also_in]
        return custom

    def _transcribe(self, event: dict[str, Any], row: Row) -> None:
        who = self.people[event["participant"]]["display"]
        marks = [
            "deleted by the sender" if row.revoked is not None else "",
            f"edited {len(row.edits)}x" if row.edits else "",
            f"in reply to {row.message.context_wamid}" if row.message.context_wamid else "",
            row.imported.label if row.imported is not None else "",
            *(f"{w} (import warning)" for w in (row.imported.warnings if row.imported else [])),
            *(e.also for e in row.also_in),
        ]
        mark = "; ".join(m for m in marks if m)
        text = (event["body"] or f"({row.message.type})").replace("\n", "\n    ")
        self.lines.append(f"[{event['timestamp']}] {who}: {text}" + (f" [{mark}]" if mark else ""))
        note = attachment_note(row)
        if note:
            self.lines.append(f"    {note}")

    # ------------------------------------------------------------------ the file

    def manifest(self) -> dict[str, Any]:
        convo = self.part.conversation
        conversation = {
            "id": self.conversation_id,
            "display": one_line(self.part.title),
            "platform": "whatsapp",
            "type": "channel" if convo.group_id else "direct",
            "participants": list(self.people),
            "custodian": self.firm,
            "custom": [
                {"name": k, "value": v}
                for k, v in (
                    ("ClientWindow conversation id", str(convo.pk)),
                    ("Client number", f"+{convo.participant.wa_id}" if convo.participant else ""),
                    ("Group id", convo.group_id),
                    ("Channel", convo.channel.name),
                    ("Log origin", self.source.origin),
                    ("Checkpoint tree size", str(self.source.tree_size)),
                )
                if v and v != "+"
            ],
        }
        return {
            "version": VERSION,
            "eventcollectionid": collection_id(self.source, self.part),
            "participants": list(self.people.values()),
            "conversations": [conversation],
            "events": self.events,
        }

    def finish(self, target: Target) -> None:
        """Validates the manifest, closes the ZIP and writes the .rsmf container."""
        manifest = self.manifest()
        VALIDATOR.validate(manifest)  # jsonschema.ValidationError: the export fails loudly
        check_references(manifest, self.members)
        data = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
        self.zip.writestr(self._member(MANIFEST, zipfile.ZIP_DEFLATED), data)
        self.zip.close()
        boundary = f"=_rsmf_{hashlib.sha256(data).hexdigest()[:24]}"
        with target.open(self.name) as out:
            out.write(self._headers(boundary))
            out.write(f"\r\n--{boundary}\r\n".encode())
            out.write(self._text_part())
            out.write(f"\r\n--{boundary}\r\n".encode())
            out.write(
                b'Content-Type: application/zip; name="rsmf.zip"\r\n'
                b'Content-Disposition: attachment; filename="rsmf.zip"\r\n'
                b"Content-Transfer-Encoding: base64\r\n\r\n"
            )
            self.spool.seek(0)
            while block := self.spool.read(57 * 1024):  # 57 bytes make one 76-character line
                encoded = base64.b64encode(block)
                out.write(
                    b"".join(encoded[i : i + 76] + b"\r\n" for i in range(0, len(encoded), 76))
                )
            out.write(f"--{boundary}--\r\n".encode())
        self.spool.close()

    def _headers(self, boundary: str) -> bytes:
        """X-RSMF-Version first; the custodian in From and everyone in To, as Relativity's own
        generator writes them (no Subject, Date or Message-ID)."""
        names = [p["display"].replace(",", " ") for p in self.people.values()]
        headers = [
            ("X-RSMF-Version", VERSION),
            ("X-RSMF-Generator", "ClientWindow"),
            ("X-RSMF-Application", "WhatsApp"),
            ("X-RSMF-BeginDate", iso(self.span[0])),
            ("X-RSMF-EndDate", iso(self.span[1])),
            ("X-RSMF-EventCount", str(len(self.events))),
            (
                "X-RSMF-AttachmentCount",
                str(sum(len(e.get("attachments", [])) for e in self.events)),
            ),
            ("X-RSMF-Custodian", self.people[self.firm]["display"]),
            ("X-RSMF-Participants", ", ".join(names)),
            ("X-RSMF-EventCollectionID", one_line(collection_id(self.source, self.part))),
        ]
        lines = [header_bytes(k, v) for k, v in headers]
        lines.append(header_bytes("From", self.addresses[self.firm]))
        lines.append(_address_list("To", list(self.addresses.values())))
        lines.append(b"MIME-Version: 1.0\r\n")
        lines.append(f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n'.encode())
        return b"".join(lines)

    def _text_part(self) -> bytes:
        title = one_line(self.part.title)
        intro = [
            f"WhatsApp conversation {title}, {self.day} (UTC): {len(self.events)} messages.",
            f"Archived by ClientWindow; log {self.source.origin}, checkpoint of "
            f"{self.source.tree_size} entries.",
            "",
        ]
        text = MIMEPart(policy=POLICY)
        text.set_content("\n".join([*intro, *self.lines]) + "\n", cte="quoted-printable")
        return text.as_bytes()


def _import_custom(entry: Imported) -> list[tuple[str, str]]:
    """An imported message's source, as the event's custom fields (module docstring)."""
    return [
        ("Source", "phone export"),
        ("Custodian", entry.custodian),
        ("Export file", entry.file_name),
        ("Export lines", entry.line_range),
        ("Exported time", entry.exported_time),
        ("Author as exported", entry.author or ""),
        ("Edited before the export", "yes" if entry.edited else ""),
        *(("Import warning", warning) for warning in entry.warnings),
    ]


def _address_list(name: str, addresses: list[Address]) -> bytes:
    """An address header folded one address at a time: Python's folder can hide the comma
    between two addresses inside an encoded word, which readers then take as one address."""
    folded = [header_bytes(name, a)[len(name) + 2 :].rstrip(b"\r\n") for a in addresses]
    return f"{name}: ".encode() + b",\r\n ".join(folded) + b"\r\n"


def check_references(manifest: dict[str, Any], members: list[str]) -> None:
    """What the schema cannot say: every id a manifest uses resolves inside the same file."""
    people = {p["id"] for p in manifest["participants"]}
    conversations = {c["id"] for c in manifest["conversations"]}
    events = {e["id"] for e in manifest["events"] if "id" in e}
    used = [p for c in manifest["conversations"] for p in [*c["participants"], c["custodian"]]]
    for event in manifest["events"]:
        used.append(event["participant"])
        used += [p for r in event.get("reactions", []) for p in r["participants"]]
        used += [e["participant"] for e in event.get("edits", [])]
        used += [r["participant"] for r in event.get("read_receipts", [])]
        if event["conversation"] not in conversations:
            raise ValueError(f"event {event.get('id')} names an unknown conversation")
        if "parent" in event and event["parent"] not in events:
            raise ValueError(f"event {event.get('id')} has a parent outside its file")
        for attachment in event.get("attachments", []):
            if attachment["id"] not in members:
                raise ValueError(f"attachment {attachment['id']} is not in rsmf.zip")
    missing = set(used) - people
    if missing:
        raise ValueError(f"unknown participants {sorted(missing)}")
