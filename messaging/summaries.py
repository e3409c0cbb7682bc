"""Conversation summaries: the counts and last message the conversation list shows and sorts by.

Conversations and messages are append-only, so what changes as messages arrive lives here, kept
by the sequencer in the same transaction as the messages it seals. `rebuild()` recomputes every
summary from the messages (used by the migration that introduced them, and safe to run any time).
"""

from collections.abc import Iterable
from typing import Any

from django.db import connection

from messaging.models import Conversation, Message

# Rows that annotate another message rather than being one (shown with their target).
ANNOTATION_TYPES = ("reaction", "edit", "revoke")

_UPSERT = """
INSERT INTO messaging_conversationsummary AS s (
    conversation_id, channel_id, message_count, inbound_count,
    first_message_at, last_message_at, last_message_id)
VALUES {values}
ON CONFLICT (conversation_id) DO UPDATE SET
    message_count = s.message_count + EXCLUDED.message_count,
    inbound_count = s.inbound_count + EXCLUDED.inbound_count,
    first_message_at = LEAST(s.first_message_at, EXCLUDED.first_message_at),
    last_message_id = CASE
        WHEN EXCLUDED.last_message_at >= s.last_message_at OR s.last_message_at IS NULL
        THEN coalesce(EXCLUDED.last_message_id, s.last_message_id)
        ELSE s.last_message_id END,
    last_message_at = GREATEST(s.last_message_at, EXCLUDED.last_message_at)
"""

REBUILD_SQL = """
INSERT INTO messaging_conversationsummary (
    conversation_id, channel_id, message_count, inbound_count,
    first_message_at, last_message_at, last_message_id)
SELECT c.id, c.channel_id,
    count(m.id), count(m.id) FILTER (WHERE m.direction = 'in'),
    min(m.sent_at), max(m.sent_at),
    (SELECT l.id FROM messaging_message l
      WHERE l.conversation_id = c.id AND l.type NOT IN ('reaction', 'edit', 'revoke')
      ORDER BY l.sent_at DESC NULLS LAST, l.id DESC LIMIT 1)
FROM messaging_conversation c
LEFT JOIN messaging_message m
    ON m.conversation_id = c.id AND m.type NOT IN ('reaction', 'edit', 'revoke')
GROUP BY c.id
ON CONFLICT (conversation_id) DO UPDATE SET
    message_count = EXCLUDED.message_count,
    inbound_count = EXCLUDED.inbound_count,
    first_message_at = EXCLUDED.first_message_at,
    last_message_at = EXCLUDED.last_message_at,
    last_message_id = EXCLUDED.last_message_id
"""


def record(conversations: Iterable[Conversation], messages: Iterable[Message]) -> None:
    """Add newly saved messages (and newly created conversations) to their summaries."""
    rows: dict[int, list[Any]] = {}
    for conversation in conversations:
        rows[conversation.pk] = [conversation.pk, conversation.channel_id, 0, 0, None, None, None]
    for message in messages:
        if message.type in ANNOTATION_TYPES:
            continue
        row = rows.setdefault(
            message.conversation_id,
            [message.conversation_id, message.channel_id, 0, 0, None, None, None],
        )
        row[2] += 1
        row[3] += message.direction == "in"
        if message.sent_at is not None:
            first, last = row[4], row[5]
            row[4] = message.sent_at if first is None or message.sent_at < first else first
            if last is None or message.sent_at >= last:
                row[5], row[6] = message.sent_at, message.pk
        elif row[6] is None:
            row[6] = message.pk
    if not rows:
        return
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    params = [value for row in sorted(rows.values(), key=lambda r: r[0]) for value in row]
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT.format(values=values), params)


def rebuild() -> None:
    with connection.cursor() as cursor:
        cursor.execute(REBUILD_SQL)
