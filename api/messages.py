"""`/api/v1/conversations/{id}/messages/`: a conversation's messages in ledger order.

The messages a transcript shows (reactions, edits and deletions are not items of their own but
belong to the message they point at), in seq order, `after` the seq a client last saw: each with
what happened to it (statuses, edits, reactions, a deletion), where it came from (captured, or a
phone export as review/provenance.py marks it), its attachment's metadata with the address of
the portal's media download, and its ledger evidence (seq, leaf hash, covering checkpoint).
review.transcript.decorate() gathers all of it for a page in a fixed number of queries, as for
the transcript. Reading a page is a VIEW_CONVERSATION access event, as opening a transcript is.

The items are built as plain dicts (the serializers below describe them for the schema):
serializing a thousand nested messages through DRF fields costs more than the queries.
"""

from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from messaging.models import PHONE_EXPORT, Attachment, Message
from messaging.summaries import ANNOTATION_TYPES
from review import access, transcript
from review.models import AccessEvent
from review.provenance import Imported
from review.views import serve_media

from . import pages


def django_request(request: Request) -> HttpRequest:
    """The request the portal's access functions take (DRF has set its user)."""
    return request._request


# --- the shape, for the schema -----------------------------------------------------------------


class ImportedSerializer(serializers.Serializer[Any]):
    custodian = serializers.CharField(help_text="The employee whose phone the export came from.")
    file_name = serializers.CharField(help_text="The exported chat file, as uploaded.")
    first_line = serializers.IntegerField(help_text="Its first line in that file.")
    last_line = serializers.IntegerField(help_text="Its last line in that file.")
    local_time = serializers.CharField(help_text="The time as exported (naive ISO 8601).")
    time_zone = serializers.CharField(help_text="The zone declared at upload.")
    author = serializers.CharField(allow_null=True, help_text="The author as exported.")
    kind = serializers.CharField(help_text="What the line is (text, media_omitted, system…).")
    flags = serializers.ListField(
        child=serializers.CharField(), help_text="Warnings the importer raised."
    )
    label = serializers.CharField(  # type: ignore[assignment]
        help_text="The mark the portal shows beside the message."
    )


class SenderSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(allow_null=True, help_text="The participant's id.")
    wa_id = serializers.CharField(help_text="The WhatsApp number (empty when unknown).")
    name = serializers.CharField(help_text="The name the portal shows for the sender.")


class StatusSerializer(serializers.Serializer[Any]):
    status = serializers.CharField(help_text="sent, delivered, read, failed…")
    occurred_at = serializers.DateTimeField(help_text="When WhatsApp says it happened.")
    recipient_id = serializers.CharField(help_text="Whom it was delivered to.")
    seq = serializers.IntegerField(help_text="Its ledger seq.")


class EditSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The edit's message id.")
    wamid = serializers.CharField(help_text="The edit's WhatsApp id.")
    text = serializers.CharField(allow_blank=True, help_text="The text after this edit.")
    sent_at = serializers.DateTimeField(allow_null=True, help_text="When it was edited.")
    seq = serializers.IntegerField(help_text="Its ledger seq.")


class ReactionSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The reaction's message id.")
    wamid = serializers.CharField(help_text="The reaction's WhatsApp id.")
    emoji = serializers.CharField(help_text="The emoji that stands (the sender's latest).")
    direction = serializers.CharField(help_text="in (the client) or out (the firm).")
    sender_wa_id = serializers.CharField(allow_null=True, help_text="Who reacted.")
    sent_at = serializers.DateTimeField(allow_null=True, help_text="When.")
    seq = serializers.IntegerField(help_text="Its ledger seq.")


class AttachmentSerializer(serializers.Serializer[Any]):
    media_id = serializers.CharField(help_text="Meta's media id.")
    outcome = serializers.ChoiceField(
        choices=Attachment.Outcome.values, help_text="Whether the file was stored."
    )
    reason = serializers.CharField(allow_blank=True, help_text="Why it was not, if it was not.")
    mime_type = serializers.CharField(allow_null=True, help_text="The stored file's type.")
    size = serializers.IntegerField(allow_null=True, help_text="The stored file's bytes.")
    sha256 = serializers.CharField(allow_null=True, help_text="The stored file's SHA-256 (hex).")
    download_url = serializers.URLField(
        allow_null=True,
        help_text="The file: GET /api/v1/messages/{id}/media/ (logged as DOWNLOAD_MEDIA).",
    )


class MessageSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The message's id.")
    seq = serializers.IntegerField(help_text="Its ledger seq: the cursor of this list.")
    leaf_hash = serializers.CharField(help_text="Its ledger leaf hash (hex).")
    checkpoint = serializers.IntegerField(
        allow_null=True, help_text="The tree size of the first signed checkpoint covering it."
    )
    conversation = serializers.IntegerField(help_text="The conversation's id.")
    wamid = serializers.CharField(help_text="WhatsApp's message id.")
    direction = serializers.CharField(help_text="in (from the client) or out (from the firm).")
    type = serializers.CharField(help_text="text, image, document, …")
    sender = SenderSerializer(allow_null=True, help_text="Who sent it, if known.")
    sent_at = serializers.DateTimeField(allow_null=True, help_text="When it was sent.")
    text = serializers.CharField(allow_blank=True, help_text="Its text as first sent.")
    current_text = serializers.CharField(allow_blank=True, help_text="Its text after edits.")
    reply_to = serializers.CharField(allow_null=True, help_text="The wamid it replied to.")
    forwarded = serializers.BooleanField(help_text="Marked as forwarded.")
    deleted = serializers.BooleanField(help_text="Deleted by its sender (the content is kept).")
    disposed = serializers.BooleanField(help_text="Its content was disposed of by retention.")
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=["captured", PHONE_EXPORT], help_text="Captured, or imported from a phone export."
    )
    captured_via = serializers.CharField(
        help_text="How it came in: messages, smb_message_echoes, history, api, phone_export."
    )
    imported = ImportedSerializer(
        allow_null=True, help_text="What the phone export said of it (an imported message)."
    )
    also_in = ImportedSerializer(many=True, help_text="Other phone exports that repeat it.")
    status = serializers.CharField(allow_blank=True, help_text="Its latest status (outbound).")
    statuses = StatusSerializer(many=True, help_text="Every status, oldest first.")
    edits = EditSerializer(many=True, help_text="Every edit, oldest first.")
    reactions = ReactionSerializer(many=True, help_text="The reactions that stand.")
    attachment = AttachmentSerializer(allow_null=True, help_text="Its media, if any.")


# --- the items ---------------------------------------------------------------------------------


def imported_item(entry: Imported) -> dict[str, Any]:
    return {
        "custodian": entry.custodian,
        "file_name": entry.file_name,
        "first_line": entry.first_line,
        "last_line": entry.last_line,
        "local_time": entry.local_time,
        "time_zone": entry.time_zone,
        "author": entry.author,
        "kind": entry.kind,
        "flags": list(entry.flags),
        "label": entry.label,
    }


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _attachment(request: Request, attachment: Attachment | None) -> dict[str, Any] | None:
    if attachment is None:
        return None
    stored = attachment.file
    url = None
    if attachment.outcome == Attachment.Outcome.STORED and stored is not None:
        url = request.build_absolute_uri(reverse("api-message-media", args=[attachment.message_id]))
    return {
        "media_id": attachment.media_id,
        "outcome": attachment.outcome,
        "reason": attachment.reason,
        "mime_type": stored.mime_type if stored else None,
        "size": stored.size if stored else None,
        "sha256": stored.sha256 if stored else None,
        "download_url": url,
    }


def item(request: Request, row: transcript.Row, leaf: bytes) -> dict[str, Any]:
    message = row.message
    sender = message.sender
    return {
        "id": message.pk,
        "seq": message.entry_id,
        "leaf_hash": leaf.hex(),
        "checkpoint": row.checkpoint,
        "conversation": message.conversation_id,
        "wamid": message.wamid,
        "direction": message.direction,
        "type": message.type,
        "sender": (
            {"id": sender.pk, "wa_id": sender.wa_id, "name": row.sender_name}
            if sender is not None
            else ({"id": None, "wa_id": "", "name": row.sender_name} if row.sender_name else None)
        ),
        "sent_at": _when(message.sent_at),
        "text": message.text,
        "current_text": row.current_text,
        "reply_to": message.context_wamid or None,
        "forwarded": message.forwarded,
        "deleted": row.revoked is not None,
        "disposed": row.disposed,
        "source": PHONE_EXPORT if message.source == PHONE_EXPORT else "captured",
        "captured_via": message.source,
        "imported": imported_item(row.imported) if row.imported else None,
        "also_in": [imported_item(entry) for entry in row.also_in],
        "status": row.status,
        "statuses": [
            {
                "status": e.status,
                "occurred_at": e.occurred_at.isoformat(),
                "recipient_id": e.recipient_id,
                "seq": e.entry_id,
            }
            for e in row.statuses
        ],
        "edits": [
            {
                "id": e.pk,
                "wamid": e.wamid,
                "text": e.text,
                "sent_at": _when(e.sent_at),
                "seq": e.entry_id,
            }
            for e in row.edits
        ],
        "reactions": [_reaction(r) for r in row.reactions],
        "attachment": _attachment(request, row.attachment),
    }


def _reaction(reaction: Message) -> dict[str, Any]:
    body = reaction.payload.get("reaction") if isinstance(reaction.payload, dict) else None
    return {
        "id": reaction.pk,
        "wamid": reaction.wamid,
        "emoji": str(body.get("emoji", "")) if isinstance(body, dict) else "",
        "direction": reaction.direction,
        "sender_wa_id": reaction.sender.wa_id if reaction.sender else None,
        "sent_at": _when(reaction.sent_at),
        "seq": reaction.entry_id,
    }


# --- the operation -----------------------------------------------------------------------------


def in_ledger_order(messages: QuerySet[Message], conversation_id: int, after: int) -> Any:
    """The conversation's transcript messages after seq `after`, in seq order. (Not joined to
    their ledger entries: PostgreSQL merges that join from the ledger's first entry, whatever
    `after` is, so a page deep in the conversation read every entry before it.)"""
    return (
        messages.filter(conversation_id=conversation_id, entry_id__gt=after)
        .exclude(type__in=ANNOTATION_TYPES)
        .select_related("sender")
        .defer("search")
        .order_by("entry_id")
    )


def leaf_hashes(seqs: list[int]) -> dict[int, bytes]:
    """The ledger leaf hashes of `seqs`, in one statement (an array: a thousand-item IN list
    costs more to build than to run)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, leaf_hash FROM archive_ledgerentry WHERE seq = ANY(%s)", [seqs])
        return {seq: bytes(leaf) for seq, leaf in cursor.fetchall()}


@extend_schema(
    operation_id="conversation_messages",
    parameters=pages.parameters("The seq of the last message already read (default: none)."),
    responses={200: pages.envelope("MessagePage", MessageSerializer(many=True))},
    description="A conversation's messages in ledger seq order, each with its statuses, edits,"
    " reactions, attachment and ledger evidence. Logged as VIEW_CONVERSATION.",
)
@api_view(["GET"])
def conversation_messages(request: Request, pk: int) -> Response:
    portal = django_request(request)
    conversation = access.conversation_for_user(portal, pk)
    after, limit = pages.after_seq(request), pages.limit_of(request)
    found = list(in_ledger_order(access.messages_for_user(portal), pk, after)[: limit + 1])
    rows = transcript.decorate(conversation, found[:limit])
    access.record_access(
        portal,
        AccessEvent.Action.VIEW_CONVERSATION,
        "conversation",
        conversation.pk,
        {"via": "api", "after": after if after >= 0 else None, "messages": len(rows)},
    )
    last = rows[-1].message.entry_id if rows else (after if after >= 0 else None)
    leaves = leaf_hashes([row.message.entry_id for row in rows])
    results = [item(request, row, leaves[row.message.entry_id]) for row in rows]
    return pages.page(request, results, None if last is None else str(last), len(found) > limit)


@extend_schema(
    operation_id="message_media",
    parameters=[
        OpenApiParameter(
            "download",
            OpenApiTypes.STR,
            enum=["1"],
            description="1: always as an attachment (else images, audio and video of safe types"
            " are inline).",
        )
    ],
    responses={
        (200, "application/octet-stream"): OpenApiTypes.BINARY,
        (200, "image/*"): OpenApiTypes.BINARY,
        (200, "audio/*"): OpenApiTypes.BINARY,
        (200, "video/*"): OpenApiTypes.BINARY,
    },
    description="The message's stored media file, byte for byte as sealed (its SHA-256 is"
    " checked before it is served; a file that no longer matches is withheld). Logged as"
    " DOWNLOAD_MEDIA, as the portal's download is.",
)
@api_view(["GET"])
def message_media(request: Request, pk: int) -> HttpResponseBase:
    return serve_media(django_request(request), pk)


urlpatterns = [
    path(
        "conversations/<int:pk>/messages/",
        conversation_messages,
        name="api-conversation-messages",
    ),
    path("messages/<int:pk>/media/", message_media, name="api-message-media"),
]
