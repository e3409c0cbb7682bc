"""`/api/v1/search/`: the search page's query language and filters, cursor-paginated.

The same form (review.search.SearchForm: the query in web-search syntax, the filters, the
upper floors' filters such as a legal hold), the same filtering and order (review/search.py), so
a query finds the same messages in the same order as the page. Newest or oldest first, the cursor
is the last hit's message id and the next page seeks from it (hits that arrive meanwhile are not
repeated); by relevance it is an offset among the newest RELEVANCE_WITHIN matches, as the page
ranks. Every call is a SEARCH access event, as the page's search is.
"""

from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.http import QueryDict
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from access.boundary import whole_number
from messaging.models import PHONE_EXPORT, Message
from review import access, search, transcript
from review.models import AccessEvent

from . import pages
from .messages import ImportedSerializer, django_request, imported_item

OWN = ("after", "limit", "page")  # the API's paging, not the form's


class HitSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The message's id.")
    seq = serializers.IntegerField(help_text="Its ledger seq.")
    conversation = serializers.IntegerField(help_text="Its conversation's id.")
    channel = serializers.IntegerField(help_text="Its channel's id.")
    wamid = serializers.CharField(help_text="WhatsApp's message id.")
    direction = serializers.CharField(help_text="in (from the client) or out (from the firm).")
    type = serializers.CharField(help_text="text, image, document, …")
    sent_at = serializers.DateTimeField(allow_null=True, help_text="When it was sent.")
    text = serializers.CharField(allow_blank=True, help_text="Its text as first sent.")
    snippet = serializers.CharField(
        allow_blank=True, help_text="HTML: the text escaped, the matching words in <mark>."
    )
    name = serializers.CharField(allow_blank=True, help_text="The client's latest name.")
    chat = serializers.CharField(allow_blank=True, help_text="An unmapped exported chat's name.")
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=["captured", PHONE_EXPORT], help_text="Captured, or imported from a phone export."
    )
    imported = ImportedSerializer(allow_null=True, help_text="What the phone export said of it.")
    also_in = ImportedSerializer(many=True, help_text="Other phone exports that repeat it.")


def _parameters() -> list[OpenApiParameter]:
    """The form's fields as query parameters (built when the schema is, so that the filters
    the upper floors register are there)."""
    form = search.SearchForm()
    described = []
    for name, field in form.fields.items():
        if name == "page":
            continue
        kind = OpenApiTypes.STR
        enum = None
        if isinstance(field, forms.ModelChoiceField):
            kind = OpenApiTypes.INT
        elif name in ("date_from", "date_to"):
            kind = OpenApiTypes.DATE
        elif name == "attachment":
            kind = OpenApiTypes.BOOL
        elif isinstance(field, forms.ChoiceField):
            enum = [str(choice[0]) for choice in field.choices]  # type: ignore[union-attr,index]
        described.append(
            OpenApiParameter(
                name, kind, enum=enum, description=str(field.help_text or field.label or name)
            )
        )
    return described


def _form_data(request: Request) -> dict[str, Any]:
    query = request.query_params.copy()
    for name in OWN:
        query.pop(name, None)
    form = search.SearchForm(query if isinstance(query, QueryDict) else None, user=request.user)
    if not form.is_valid():
        raise ValidationError({k: [str(e) for e in v] for k, v in form.errors.items()})
    return form.cleaned_data


def _after_hit(messages: QuerySet[Message], raw: str, oldest: bool) -> tuple[Q, Message]:
    """Hits after the message the cursor names, in the order of the page; and that message."""
    pk = whole_number(raw)
    last = messages.filter(pk=pk).only("id", "sent_at").first() if pk is not None else None
    if last is None:
        raise ValidationError({"after": ["is not a cursor this search gave"]})
    if oldest:
        return transcript.later_than(last), last
    if last.sent_at is None:
        return Q(sent_at__isnull=True, id__lt=last.pk), last
    later = (
        Q(sent_at__lt=last.sent_at)
        | Q(sent_at=last.sent_at, id__lt=last.pk)
        | Q(sent_at__isnull=True)
    )
    return later, last


def _offset(raw: str) -> int:
    number = whole_number(raw.removeprefix("r")) if raw.startswith("r") else None
    if number is None or number > search.RELEVANCE_WITHIN:
        raise ValidationError({"after": ["is not a cursor this search gave"]})
    return number


def ordered_ids(
    messages: QuerySet[Message], data: dict[str, Any], after: str, limit: int
) -> tuple[list[int], int]:
    """Up to limit + 1 ids of hits after the cursor, in the page's order; and the offset of the
    first (relevance only)."""
    matching, how = search.matching(messages, data)
    query = how.query
    sort = data.get("sort") or "newest"
    if sort == "relevance" and query is not None:
        start = _offset(after) if after else 0
        ids, _ = search.ranked(matching, query, start, start + limit + 1)
        return ids, start
    oldest = sort == "oldest"
    later, cursor = _after_hit(messages, after, oldest) if after else (Q(), None)
    matching = matching.filter(later)
    # A phrase as the search page reads it (walked, or span by span), after the cursor: its
    # spans start at the cursor's time. After an undated hit, newest first, only undated
    # messages are left, which the ordered statement finds by themselves.
    beyond = cursor.sent_at if cursor is not None else None
    only_undated = cursor is not None and beyond is None and not oldest
    if not only_undated:
        phrase = search.phrase_ids(matching, how.narrowed(later), oldest, limit + 1, beyond=beyond)
        if phrase is not None:
            return phrase[0], 0
    order = transcript.ASC if oldest else transcript.DESC
    with search.pairs_memory(how.pairs):
        return list(matching.order_by(*order).values_list("id", flat=True)[: limit + 1]), 0


def _hit(hit: search.Hit) -> dict[str, Any]:
    message = hit.message
    return {
        "id": message.pk,
        "seq": message.entry_id,
        "conversation": message.conversation_id,
        "channel": message.channel_id,
        "wamid": message.wamid,
        "direction": message.direction,
        "type": message.type,
        "sent_at": message.sent_at.isoformat() if message.sent_at else None,
        "text": message.text,
        "snippet": str(hit.snippet),
        "name": hit.name,
        "chat": hit.chat,
        "source": PHONE_EXPORT if message.source == PHONE_EXPORT else "captured",
        "imported": imported_item(hit.imported) if hit.imported else None,
        "also_in": [imported_item(entry) for entry in hit.also_in],
    }


@extend_schema(
    operation_id="search",
    parameters=[*_parameters(), *pages.parameters("The `cursor` of the previous page.")],
    responses={200: pages.envelope("SearchPage", HitSerializer(many=True))},
    description="The search page's query (web-search syntax: quoted phrases, OR, -exclusion)"
    " and filters; the same hits in the same order. Logged as SEARCH.",
)
@api_view(["GET"])
def search_messages(request: Request) -> Response:
    portal = django_request(request)
    messages = access.messages_for_user(portal)
    data = _form_data(request)
    after, limit = request.query_params.get("after", ""), pages.limit_of(request)
    if "\x00" in after or len(after) > 40:
        raise ValidationError({"after": ["is not a cursor this search gave"]})
    ids, start = ordered_ids(messages, data, after, limit)
    q = (data.get("q") or "").strip()
    hits = search.hits(ids[:limit], search.text_query(q) if q else None)
    access.record_access(
        portal,
        AccessEvent.Action.SEARCH,
        detail={
            "query": data.get("q") or "",
            "filters": {
                k: str(v.pk if hasattr(v, "pk") else v)
                for k, v in data.items()
                if v not in (None, "", False, "newest") and k not in ("q", "page")
            },
            "results": len(hits),
            "via": "api",
            "after": after or None,
        },
    )
    if (data.get("sort") or "newest") == "relevance" and q:
        cursor = f"r{start + len(hits)}" if hits or after else None
    else:
        cursor = str(hits[-1].message.pk) if hits else (after or None)
    return pages.page(request, [_hit(h) for h in hits], cursor, len(ids) > limit)


urlpatterns = [path("search/", search_messages, name="api-search")]
