"""The change feed, `GET /api/v1/feed/?after=<seq>&limit=&wait=`: sealed records in seq order.

Each record is a ledger entry (docs/LEDGER.md): its seq, kind, sealed_at, envelope (decoded: the
public fields), leaf hash, its contents where the user may read them, and the ids of the message
or conversation it is, with their API address, when it is one.

**Exactly once.** `seq` order is commit order: ledger.append() takes the chain-head row lock
before it numbers a batch and holds it until its transaction commits, so seq n+1 cannot even be
written before seq n is committed (and visible: PostgreSQL releases a transaction's locks only
after its commit is visible to new snapshots). A page `seq > after ORDER BY seq` therefore never
returns a record while an earlier one is still to come: a consumer that stores the last seq it
processed and asks `?after=<it>` sees every record exactly once, in order, across any failure.

**Long poll.** With `wait=N` (0 to 30 s) and nothing new, the request waits for new records: it
reads the chain head's size every 0.25 s (one primary-key read, ~0.1 ms) and reads the page again
once the size has grown. Each read is its own autocommit statement: no transaction is held, the
connection sits idle between reads. It does hold the worker thread for up to `wait` seconds: size
the server's threads for the consumers that long-poll (each holds one). Measured by
tests/performance/test_bench_feed.py: a tick costs 0.1 ms of database time, and a waiting poll
returns a record appended meanwhile after 36-80 ms (a tick, then the page).

**Who sees what** (the portal's rules; a record the user may not see is left out of the page, and
the next page starts after it):

- review.read_archive (every role): message, message.imported, message.status,
  message.attachment, message.send, message.send_failed, conversation, participant,
  participant.profile, media.file, review.decision, review.comment;
- retention.view_legalhold: legal_hold.created, .changed, .released;
- retention.view_disposition: retention.disposition, .planned, .approved, .rejected, .files;
- retention.view_retentionpolicy: retention.policy;
- retention.view_erasurerequest: gdpr.erasure_request, gdpr.erasure_decision;
- exports.view_all_exports: export.requested, .completed, .downloaded;
- messaging.view_delivery: webhook.delivery, account.event, item.unparsed, item.resealed;
- bridge.view_inboundemail: email.inbound;
- imports.view_importjob: chat.export, import.started, import.finished;
- archive.view_ledgerentry: storage.migrated and every kind not listed here (new kinds), whose
  contents are withheld until they are added to RULES.

So a Reviewer follows messages, conversations and review work; an Auditor also holds,
dispositions and policies; Legal also holds, policies and erasure requests; an Administrator
everything. A record's contents need the same permission as the record.

A content deleted by disposition is listed with state `disposed` (its commitment is still in the
envelope). **Logging**: a request that returned records logs one READ_FEED access event (first
and last seq, count); an empty page, or a long poll that ended empty, logs nothing (it showed
nothing), so a consumer polling an idle archive does not fill the access log.
"""

import base64
import json
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.roles import HasRole
from review.access import READ, record_access, require
from review.models import AccessEvent

from . import pages

MAX_WAIT = 30  # seconds a long poll may last
TICK = 0.25  # seconds between two reads of the chain head while waiting
EVERYTHING = "archive.view_ledgerentry"

RULES: dict[str, tuple[str, ...]] = {
    READ: (
        "message",
        "message.imported",
        "message.status",
        "message.attachment",
        "message.send",
        "message.send_failed",
        "conversation",
        "participant",
        "participant.profile",
        "media.file",
        "review.decision",
        "review.comment",
    ),
    "retention.view_legalhold": (
        "legal_hold.created",
        "legal_hold.changed",
        "legal_hold.released",
    ),
    "retention.view_disposition": (
        "retention.disposition",
        "retention.disposition.planned",
        "retention.disposition.approved",
        "retention.disposition.rejected",
        "retention.disposition.files",
    ),
    "retention.view_retentionpolicy": ("retention.policy",),
    "retention.view_erasurerequest": ("gdpr.erasure_request", "gdpr.erasure_decision"),
    "exports.view_all_exports": ("export.requested", "export.completed", "export.downloaded"),
    "messaging.view_delivery": (
        "webhook.delivery",
        "account.event",
        "item.unparsed",
        "item.resealed",
    ),
    "bridge.view_inboundemail": ("email.inbound",),
    "imports.view_importjob": ("chat.export", "import.started", "import.finished"),
    EVERYTHING: ("storage.migrated",),
}
KNOWN = frozenset(kind for kinds in RULES.values() for kind in kinds)


def readable_kinds(user: Any) -> frozenset[str] | None:
    """The kinds `user` may follow; None: every kind (archive.view_ledgerentry)."""
    if user.has_perm(EVERYTHING):
        return None
    return frozenset(kind for perm, kinds in RULES.items() if user.has_perm(perm) for kind in kinds)


def wait_of(request: Request) -> int:
    """`wait`: seconds a long poll may last, 0 (the default) to MAX_WAIT."""
    return pages.integer(request, "wait", 0, 0, MAX_WAIT)


def entries_after(after: int, limit: int, kinds: frozenset[str] | None) -> list[tuple[Any, ...]]:
    """(seq, kind, envelope, leaf_hash) of the first `limit` entries after `after` in `kinds`."""
    sql = "SELECT seq, kind, envelope, leaf_hash FROM archive_ledgerentry WHERE seq > %s"
    params: list[Any] = [after]
    if kinds is not None:
        sql += " AND kind = ANY(%s)"
        params.append(sorted(kinds))
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY seq LIMIT %s", [*params, limit])
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    return rows


def chain_size() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT size FROM archive_chainhead WHERE id = 1")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def follow(after: int, limit: int, kinds: frozenset[str] | None, wait: int) -> list[Any]:
    """The page after `after`, waiting up to `wait` seconds for one if there is none yet."""
    deadline = time.monotonic() + wait
    size = chain_size()
    while True:
        rows = entries_after(after, limit, kinds) if size > after + 1 else []
        if rows or time.monotonic() >= deadline:
            return rows
        while time.monotonic() < deadline:
            time.sleep(min(TICK, max(0.0, deadline - time.monotonic())))
            if (grown := chain_size()) != size:
                size = grown
                break


def contents_of(seqs: list[int]) -> dict[int, dict[str, bytes]]:
    found: dict[int, dict[str, bytes]] = defaultdict(dict)
    if seqs:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT seq, name, content FROM archive_content WHERE seq = ANY(%s)", [seqs]
            )
            for seq, name, content in cursor.fetchall():
                found[seq][name] = bytes(content)
    return found


# One statement for a page's links, whatever its size: messages (and imported ones), attachments
# (their message) and conversations, by the seq of the entry that sealed them.
OBJECTS = """
SELECT seq, id, conversation_id FROM messaging_message WHERE seq = ANY(%(messages)s)
UNION ALL
SELECT a.seq, a.message_id, m.conversation_id FROM messaging_attachment a
  JOIN messaging_message m ON m.id = a.message_id WHERE a.seq = ANY(%(attachments)s)
UNION ALL
SELECT seq, NULL, id FROM messaging_conversation WHERE seq = ANY(%(conversations)s)
"""
OBJECT_KINDS = {
    "message": "messages",
    "message.imported": "messages",
    "message.attachment": "attachments",
    "conversation": "conversations",
}


def objects_of(rows: list[tuple[Any, ...]]) -> dict[int, tuple[int | None, int | None]]:
    """seq → (message id, conversation id) for the messages, attachments and conversations."""
    seqs: dict[str, list[int]] = {"messages": [], "attachments": [], "conversations": []}
    for seq, kind, *_ in rows:
        if kind in OBJECT_KINDS:
            seqs[OBJECT_KINDS[kind]].append(seq)
    if not any(seqs.values()):
        return {}
    with connection.cursor() as cursor:
        cursor.execute(OBJECTS, seqs)
        return {seq: (message, conversation) for seq, message, conversation in cursor.fetchall()}


def content_items(
    fields: dict[str, Any], present: dict[str, bytes], readable: bool
) -> list[dict[str, Any]]:
    items = []
    for key in sorted(fields):
        if not key.startswith("commit."):
            continue
        name = key.removeprefix("commit.")
        content = present.get(name)
        state = "withheld" if not readable else "present" if content is not None else "disposed"
        shown = content if state == "present" else None
        items.append({"name": name, "state": state, **_decoded(shown)})
    return items


def _decoded(content: bytes | None) -> dict[str, str | None]:
    if content is None:
        return {"text": None, "base64": None}
    try:
        return {"text": content.decode(), "base64": None}
    except UnicodeDecodeError:
        return {"text": None, "base64": base64.b64encode(content).decode()}


def records(rows: list[tuple[Any, ...]], request: Request) -> Iterable[dict[str, Any]]:
    contents = contents_of([row[0] for row in rows])
    objects = objects_of(rows)
    conversations = request.build_absolute_uri("/api/v1/conversations/")  # once: it checks the host
    for seq, kind, envelope, leaf in rows:
        fields = json.loads(bytes(envelope).decode())  # str: json skips detect_encoding
        message, conversation = objects.get(seq, (None, None))
        if kind == "review.decision":  # its envelope names them
            message, conversation = fields.get("message"), fields.get("conversation")
        yield {
            "seq": seq,
            "kind": kind,
            "sealed_at": fields["sealed_at"],
            "leaf_hash": bytes(leaf).hex(),
            "envelope": fields,
            "contents": content_items(fields, contents.get(seq, {}), kind in KNOWN),
            "message": message,
            "conversation": conversation,
            "conversation_url": (
                f"{conversations}{conversation}/" if conversation is not None else None
            ),
        }


class FeedContentSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="The content's name (the envelope's commit.<name>).")
    state = serializers.ChoiceField(
        choices=["present", "disposed", "withheld"],
        help_text="present; disposed (deleted by retention, its commitment remains); withheld "
        "(a kind whose contents the feed does not show).",
    )
    text = serializers.CharField(
        allow_null=True, help_text="The content as UTF-8 text; null when not text or not present."
    )
    base64 = serializers.CharField(
        allow_null=True, help_text="The content's bytes in base64 when they are not UTF-8 text."
    )


class FeedRecordSerializer(serializers.Serializer[Any]):
    seq = serializers.IntegerField(help_text="Position in the ledger; pass it as `after`.")
    kind = serializers.CharField(help_text="What the record is (docs/LEDGER.md §8).")
    sealed_at = serializers.CharField(help_text="When it was sealed (RFC 3339, UTC).")
    leaf_hash = serializers.CharField(help_text="sha256(0x00 ‖ envelope), hex.")
    envelope = serializers.DictField(
        child=serializers.JSONField(),
        help_text="The sealed envelope, decoded: public fields and content commitments.",
    )
    contents = FeedContentSerializer(many=True, help_text="The contents the envelope commits to.")
    message = serializers.IntegerField(
        allow_null=True, help_text="The message this record is (or is about), if any."
    )
    conversation = serializers.IntegerField(
        allow_null=True, help_text="The conversation this record is (or belongs to), if any."
    )
    conversation_url = serializers.URLField(
        allow_null=True, help_text="The conversation's API address, if any."
    )


class FeedView(APIView):
    permission_classes = [IsAuthenticated, HasRole]

    @extend_schema(
        operation_id="feed_list",
        summary="Sealed records after a seq, in seq order (long-polls with wait)",
        parameters=[
            *pages.parameters("The last seq processed (omit to start at the beginning)."),
            OpenApiParameter(
                "wait",
                {"type": "integer", "minimum": 0, "maximum": MAX_WAIT},
                description=f"Seconds to wait for new records when none are ready (0-{MAX_WAIT}).",
            ),
        ],
        responses={200: pages.envelope("FeedPage", FeedRecordSerializer(many=True))},
    )
    def get(self, request: Request) -> Response:
        require(request, READ)
        after, limit, wait = pages.after_seq(request), pages.limit_of(request), wait_of(request)
        rows = follow(after, limit, readable_kinds(request.user), wait)
        results = list(records(rows, request))
        if results:
            first, last = results[0]["seq"], results[-1]["seq"]
            detail = {
                "via": "api",
                "after": after,
                "count": len(results),
                "first": first,
                "last": last,
            }
            record_access(
                request, AccessEvent.Action.READ_FEED, "ledger", f"{first}-{last}", detail
            )
        cursor = str(rows[-1][0]) if rows else (str(after) if after >= 0 else None)
        return pages.page(request, results, cursor, len(rows) == limit)


urlpatterns = [path("feed/", FeedView.as_view(), name="api-feed")]
