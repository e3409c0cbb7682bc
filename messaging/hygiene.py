"""What the capture path's records can hold, decided in one place.

A signed delivery is evidence whatever it contains, and its raw bytes are kept exactly
(`Delivery.body`, bytea). The records made from it must fit PostgreSQL: text and jsonb cannot
hold a NUL, and nothing can hold a lone UTF-16 surrogate (`"\\ud800"` in JSON). So:

- `safe_json()` gives the parsed document with every such character replaced by U+FFFD; the
  parser applies it once, so everything downstream (records, commitments, search) sees the safe
  form, and the exact form stays in the delivery's body and its sealed commitment.
- `too_deep()` refuses documents nested deeper than Meta ever sends (their bodies are under ten
  levels), before any recursive code walks them.
- `refusal()` refuses identifiers longer than their columns: such an item becomes an unparsed
  item (kept whole) instead of a silently truncated record.
"""

from typing import Any

from access import boundary

MAX_DEPTH = 64
UNSAFE = boundary.UNSTORABLE  # NUL, and surrogates (only lone ones survive json)
REPLACEMENT = "\ufffd"

# The longest value each identifier may have; the columns that hold them are at least this long
# (Participant.key is "wa:" or "bsuid:" + the id, Conversation.key "group:" + the group id).
LIMITS = {
    "id": 250,  # wamid: Message.wamid, StatusEvent.wamid
    "from": 64,  # Participant.wa_id
    "to": 64,
    "wa_id": 64,
    "from_user_id": 190,  # Participant.user_id, within Participant.key's 200
    "user_id": 190,
    "parent_user_id": 200,
    "group_id": 240,  # within Conversation.key's 250
    "type": 64,
    "status": 32,
    "recipient_id": 250,
    "message_id": 250,  # a reaction's, edit's or revocation's target
    "original_message_id": 250,
    "media_id": 200,  # Attachment.media_id
    "phone_number_id": 64,
    "field": 100,
    "waba_id": 64,
}


def safe_text(value: str) -> str:
    return UNSAFE.sub(REPLACEMENT, value)


def safe_json(value: Any) -> Any:
    """`value` with NULs and lone surrogates replaced in every string, keys included."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, list):
        return [safe_json(v) for v in value]
    if isinstance(value, dict):
        return {safe_text(k): safe_json(v) for k, v in value.items()}
    return value


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests lists and objects more than `limit` levels (iteratively)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in node)
    return False


def refusal(values: dict[str, Any]) -> str:
    """Why these identifiers cannot be archived as they are ("" when they can)."""
    for key, limit in LIMITS.items():
        value = values.get(key)
        if value is None:
            continue
        length = len(value if isinstance(value, str) else str(value))  # records keep str(value)
        if length > limit:
            return f"{key} is {length} characters long (at most {limit})"
    return ""


def short_reason(text: str, limit: int = 300) -> str:
    """A reason fit to show and to seal: safe text, one line, bounded."""
    text = safe_text(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
