"""`/api/v1/conversations/`: the portal's conversation list, with its filters and cursor, and one
conversation's participants and counts. Its messages are api/messages.py; search api/search.py.

The list is review/conversation_list.py's page, as the portal shows it (most recent first, or
oldest first), filtered by the same query parameters; its cursor is the list's keyset position.
Neither the list nor the detail is an access event, as the portal's list is not: they show what
the list shows of a conversation (who, where, how many, when) and no message. Reading messages
is (api/messages.py), as opening a transcript is.
"""

from typing import Any

from django.urls import URLPattern, URLResolver, include, path
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from access.boundary import whole_number
from messaging.models import Channel, Conversation, ConversationSummary, Participant
from messaging.participants import latest_names
from review import access, conversation_list, provenance
from review.forms import ConversationFilters
from review.models import ConversationTag

from . import messages, pages, search
from .messages import django_request

FLAGGED = ["", "open"]
SORTS = ["", "newest", "oldest"]


class ChannelSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The channel's id (the `channel` filter).")
    name = serializers.CharField(help_text="The channel's name.")
    phone_number_id = serializers.CharField(help_text="Meta's phone number id.")
    display_number = serializers.CharField(allow_blank=True, help_text="The number clients see.")


class ParticipantSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The participant's id.")
    wa_id = serializers.CharField(allow_blank=True, help_text="The WhatsApp number.")
    name = serializers.CharField(allow_blank=True, help_text="Their latest profile name.")


class TagSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The tag's id (the `tag` filter).")
    name = serializers.CharField(help_text="The tag's name.")


class ConversationSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The conversation's id.")
    title = serializers.CharField(help_text="What the portal's list calls it.")
    channel = ChannelSerializer(help_text="The firm's number it is on.")
    participant = ParticipantSerializer(
        allow_null=True, help_text="The client of a one-to-one conversation (null for a group)."
    )
    group_id = serializers.CharField(allow_blank=True, help_text="The group's id, for a group.")
    message_count = serializers.IntegerField(help_text="Messages (not reactions or edits).")
    inbound_count = serializers.IntegerField(help_text="Of which from the client.")
    first_message_at = serializers.DateTimeField(allow_null=True, help_text="Its first message.")
    last_message_at = serializers.DateTimeField(allow_null=True, help_text="Its last message.")
    tags = TagSerializer(many=True, help_text="Tags applied to the conversation.")
    open_flags = serializers.IntegerField(help_text="Flags open or escalated on it.")


class ConversationDetailSerializer(ConversationSerializer):
    participants = ParticipantSerializer(
        many=True, help_text="Everyone who wrote in it, and its client."
    )
    flags = serializers.IntegerField(help_text="Flags raised on it, in any state.")
    messages_url = serializers.URLField(help_text="Its messages, in ledger order.")


LIST_PARAMETERS = [
    OpenApiParameter("channel", OpenApiTypes.INT, description="Only this channel's."),
    OpenApiParameter("who", OpenApiTypes.STR, description="A client's name or part of a number."),
    OpenApiParameter("tag", OpenApiTypes.INT, description="Only conversations with this tag."),
    OpenApiParameter("flagged", OpenApiTypes.STR, enum=FLAGGED, description="open: with a flag"),
    OpenApiParameter("sort", OpenApiTypes.STR, enum=SORTS, description="newest (default) first"),
    *pages.parameters("The `cursor` of the previous page."),
]


def _filters(request: Request) -> conversation_list.Filters:
    """The portal's filters, checked as the portal checks them; the API also refuses values the
    portal ignores (a flagged or sort it does not know, a cursor it never gave)."""
    form = ConversationFilters(request.query_params)
    if not form.is_valid():
        raise ValidationError({k: [str(e) for e in v] for k, v in form.errors.items()})
    data = form.cleaned_data
    errors = {}
    if data["flagged"] not in FLAGGED:
        errors["flagged"] = ["must be open, or empty"]
    if data["sort"] not in SORTS:
        errors["sort"] = ["must be newest or oldest"]
    if data["after"] and not _is_cursor(data["after"]):
        errors["after"] = ["is not a cursor this list gave"]
    if errors:
        raise ValidationError(errors)
    return conversation_list.Filters.from_query(request.query_params)


def _is_cursor(value: str) -> bool:
    stamp, bar, pk = value.partition("|")
    if not bar or whole_number(pk) is None:
        return False
    try:
        return not stamp or parse_datetime(stamp) is not None
    except ValueError:
        return False


def _cursor(summary: ConversationSummary) -> str:
    """The portal's keyset position of a row (conversation_list.page's next cursor)."""
    stamp = summary.last_message_at.isoformat() if summary.last_message_at else ""
    return f"{stamp}|{summary.conversation_id}"


def _channel(channel: Channel) -> dict[str, Any]:
    return {
        "id": channel.pk,
        "name": channel.name,
        "phone_number_id": channel.phone_number_id,
        "display_number": channel.display_number,
    }


def _participant(participant: Participant | None, name: str) -> dict[str, Any] | None:
    if participant is None:
        return None
    return {"id": participant.pk, "wa_id": participant.wa_id, "name": name}


def _item(summary: ConversationSummary, name: str, tags: Any, open_flags: int) -> dict[str, Any]:
    conversation = summary.conversation
    return {
        "id": conversation.pk,
        "title": name or provenance.chat_name(conversation) or str(conversation),
        "channel": _channel(summary.channel),
        "participant": _participant(conversation.participant, name),
        "group_id": conversation.group_id,
        "message_count": summary.message_count,
        "inbound_count": summary.inbound_count,
        "first_message_at": _when(summary.first_message_at),
        "last_message_at": _when(summary.last_message_at),
        "tags": [{"id": tag.pk, "name": tag.name} for tag in tags],
        "open_flags": open_flags,
    }


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


@extend_schema(
    operation_id="conversations_list",
    parameters=LIST_PARAMETERS,
    responses={200: pages.envelope("ConversationPage", ConversationSerializer(many=True))},
    description="The portal's conversation list, most recent first, with its filters.",
)
@api_view(["GET"])
def conversation_index(request: Request) -> Response:
    access.conversations_for_user(django_request(request))
    filters = _filters(request)
    listing = conversation_list.page(filters, size=pages.limit_of(request))
    results = [
        _item(row, row.name, row.tag_list, row.open_flags)  # type: ignore[attr-defined]
        for row in listing.rows
    ]
    cursor = _cursor(listing.rows[-1]) if listing.rows else (filters.after or None)
    return pages.page(request, results, cursor, bool(listing.next_cursor))


@extend_schema(
    operation_id="conversations_retrieve",
    responses={200: ConversationDetailSerializer},
    description="A conversation with its participants and counts (its messages: messages_url).",
)
@api_view(["GET"])
def conversation_detail(request: Request, pk: int) -> Response:
    portal = django_request(request)
    conversation: Conversation = access.conversation_for_user(portal, pk)
    summary = ConversationSummary.objects.filter(conversation=conversation).first()
    if summary is None:  # a conversation the sequencer has not summed up yet: nothing in it
        summary = ConversationSummary(conversation=conversation, channel=conversation.channel)
    senders = set(
        access.messages_for_user(portal)
        .filter(conversation=conversation, sender__isnull=False)
        .values_list("sender_id", flat=True)
        .distinct()
    )
    if conversation.participant_id is not None:
        senders.add(conversation.participant_id)
    names = latest_names(senders)
    name = names.get(conversation.participant_id or 0, "")
    flags = access.flags_for_user(portal).filter(conversation=conversation)
    tags = [
        a.tag
        for a in ConversationTag.objects.filter(conversation=conversation).select_related("tag")
    ]
    body = _item(summary, name, tags, flags.filter(state__in=conversation_list.OPEN_STATES).count())
    body["participants"] = [
        _participant(p, names.get(p.pk, ""))
        for p in Participant.objects.filter(pk__in=senders).order_by("pk")
    ]
    body["flags"] = flags.count()
    body["messages_url"] = request.build_absolute_uri(request.path.rstrip("/") + "/messages/")
    return Response(body)


urlpatterns: list[URLPattern | URLResolver] = [
    path("conversations/", conversation_index, name="api-conversations"),
    path("conversations/<int:pk>/", conversation_detail, name="api-conversation"),
    path("", include(messages.urlpatterns)),
    path("", include(search.urlpatterns)),
]
