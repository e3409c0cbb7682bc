"""Split a Cloud API webhook body into items, never raising: every `entry[] → changes[] → …[]`
element becomes one `Item`, and whatever cannot be read becomes an "unparsed" item that keeps
its raw JSON. No database here: messaging/sequencer.py turns items into records.
"""

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from messaging import hygiene

Kind = Literal["message", "status", "event", "unparsed"]

# Where each field keeps its list of items, and which direction those messages travel.
MESSAGE_LISTS = {"messages": ("messages", "in"), "smb_message_echoes": ("message_echoes", "out")}


@dataclass
class Item:
    kind: Kind
    path: str
    raw: Any
    field_name: str = ""
    phone_number_id: str = ""
    display_number: str = ""
    waba_id: str = ""
    source: str = ""
    direction: str = ""
    counterpart: str = ""  # the client's wa_id for echoes and history threads
    contacts: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""


def parse(body: bytes) -> list[Item]:
    """All items of one delivery, in the order Meta sent them; strings in their safe form
    (messaging/hygiene.py). A body that cannot be read is one unparsed item with its bytes."""
    try:
        document = json.loads(body, parse_float=_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = f"body is not JSON: {type(exc).__name__}: {exc}"
        return [Item("unparsed", "$", body, reason=hygiene.short_reason(reason))]
    if hygiene.too_deep(document):
        reason = f"body nests deeper than {hygiene.MAX_DEPTH} levels"
        return [Item("unparsed", "$", body, reason=reason)]
    if not isinstance(document, dict) or not isinstance(document.get("entry"), list):
        return [Item("unparsed", "$", body, reason="no entry list")]
    document = hygiene.safe_json(document)
    items: list[Item] = []
    for e, entry in enumerate(document["entry"]):
        path = f"entry[{e}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            items.append(Item("unparsed", path, entry, reason="entry without a changes list"))
            continue
        for c, change in enumerate(entry["changes"]):
            items.extend(_change(change, f"{path}.changes[{c}]", str(entry.get("id", ""))))
    return items


def _change(change: Any, path: str, waba_id: str) -> Iterator[Item]:
    if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
        yield Item("unparsed", path, change, reason="change without a value object")
        return
    value, name = change["value"], str(change.get("field", ""))
    metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
    base: dict[str, Any] = {
        "field_name": name,
        "waba_id": waba_id,
        "phone_number_id": str(metadata.get("phone_number_id", "")),
        "display_number": str(metadata.get("display_phone_number", "")),
    }
    if name in MESSAGE_LISTS:
        yield from _messages(value, path, base, *MESSAGE_LISTS[name])
    elif name == "history":
        yield from _history(value, path, base)
    else:
        yield Item("event", path, value, **base)


def _messages(
    value: dict[str, Any], path: str, base: dict[str, Any], key: str, direction: str
) -> Iterator[Item]:
    contacts = [c for c in value.get("contacts", []) if isinstance(c, dict)]
    found = False
    kinds: tuple[tuple[str, Kind], ...] = ((key, "message"), ("statuses", "status"))
    for list_key, kind in kinds:
        for i, raw in enumerate(_list(value.get(list_key))):
            found = True
            where = f"{path}.value.{list_key}[{i}]"
            counterpart = str(raw.get("to", "")) if isinstance(raw, dict) else ""
            yield Item(
                kind,
                where,
                raw,
                source=base["field_name"],
                direction=direction,
                contacts=contacts,
                counterpart=counterpart,
                **base,
            )
    if "errors" in value or not found:  # value-level errors, or something we do not know
        yield Item("event", path, value, **base)


def _history(value: dict[str, Any], path: str, base: dict[str, Any]) -> Iterator[Item]:
    for h, chunk in enumerate(_list(value.get("history"))):
        threads = _list(chunk.get("threads")) if isinstance(chunk, dict) else []
        if not threads:
            yield Item("event", f"{path}.value.history[{h}]", chunk, **base)
        for t, thread in enumerate(threads):
            thread_path = f"{path}.value.history[{h}].threads[{t}]"
            if not isinstance(thread, dict):
                yield Item("unparsed", thread_path, thread, reason="thread is not an object")
                continue
            for m, raw in enumerate(_list(thread.get("messages"))):
                outbound = isinstance(raw, dict) and raw.get("from") == base["display_number"]
                yield Item(
                    "message",
                    f"{thread_path}.messages[{m}]",
                    raw,
                    source="history",
                    direction="out" if outbound else "in",
                    counterpart=str(thread.get("id", "")),
                    **base,
                )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _float(literal: str) -> float | str:
    """A number too large for a float (1e400) stays its literal: jsonb cannot hold infinity."""
    value = float(literal)
    return value if math.isfinite(value) else literal


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def timestamp(value: Any) -> datetime | None:
    """Meta's Unix-seconds timestamps, sent as strings or integers."""
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def message_text(message: dict[str, Any]) -> str:
    """The human-readable text of a message of any type, for search and transcripts."""
    kind = str(message.get("type", ""))
    body = message.get(kind)
    if kind == "edit" and isinstance(body, dict) and isinstance(body.get("message"), dict):
        return message_text(body["message"])
    if kind == "contacts" and isinstance(body, list):
        names = [c.get("name", {}).get("formatted_name", "") for c in body if isinstance(c, dict)]
        return ", ".join(n for n in names if isinstance(n, str))
    if not isinstance(body, dict):
        return ""
    if kind == "interactive":
        reply = next((v for v in body.values() if isinstance(v, dict)), {})
        return str(reply.get("title") or reply.get("body") or "")
    for key in ("body", "caption", "text", "emoji", "name", "address", "filename"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])
    return ""


def target_wamid(message: dict[str, Any]) -> str:
    """The message a reaction, edit or revocation refers to."""
    kind = str(message.get("type", ""))
    body = message.get(kind)
    if not isinstance(body, dict):
        return ""
    return str(body.get("message_id") or body.get("original_message_id") or "")
