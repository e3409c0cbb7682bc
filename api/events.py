"""The access and security events feed, `GET /api/v1/events/?after=<cursor>&limit=&wait=`.

For a SIEM (Splunk, Elastic, Sentinel): every AccessEvent — sign-ins and their failures,
lockouts, second factors, API tokens issued, revoked and refused, conversations viewed, searches,
downloads, exports, imports, feed reads — as JSON objects with stable field names: `id`, `at`
(RFC 3339, UTC), `action`, `user` (null for an unknown account), `username`, `address`,
`object_type`, `object_id`, `detail`. The same objects go to SECURITY_EVENTS_SYSLOG
(review/security_log.py). Users with review.view_accessevent (Administrators) only.

**Exactly once.** Event ids come from a sequence drawn at INSERT, and transactions commit in any
order, so `id > after` could pass over an event that commits later with a smaller id. Each row
records its writing transaction's id (`xact`, xid8; review/migrations/0005). A page returns rows
in (xact, id) order, only those whose transaction is older than every transaction still running
(`xact < pg_snapshot_xmin(pg_current_snapshot())`): every such transaction has ended, and any
transaction yet to write gets a larger id, so no row can ever appear before the cursor. The
cursor is the opaque `"<xact>.<id>"` of the last row returned. The price: an event is served only
once every transaction that began writing before it has ended (usually milliseconds; a long
import batch delays the feed until it commits).

**Long poll** as the change feed (api/feed.py): with `wait=N` (0-30 s) and nothing new, the page
is read again every 0.25 s in autocommit (no transaction held), holding the worker thread.
**Logging**: a request that returned events logs one READ_EVENTS event, unless every event it
returned was one of the reader's own READ_EVENTS (else a SIEM following the feed would log a read
of its last read forever); empty pages log nothing.
"""

import re
import time
from typing import Any

from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.roles import HasRole
from review.access import access_events_for_user, record_access
from review.models import AccessEvent
from review.security_log import as_json

from . import pages
from .feed import MAX_WAIT, TICK, wait_of

CURSOR = re.compile(r"(\d{1,20})\.(\d{1,19})")
MAX_XID8 = 2**64 - 1
SETTLED = "xact < pg_snapshot_xmin(pg_current_snapshot())"


def cursor_of(request: Request) -> tuple[int, int]:
    raw = request.query_params.get("after", "")
    if raw == "":
        return (0, 0)
    match = CURSOR.fullmatch(raw)
    if not match or int(match[1]) > MAX_XID8 or int(match[2]) > pages.MAX_SEQ:
        raise ValidationError({"after": ["must be a cursor this feed returned"]})
    return int(match[1]), int(match[2])


def events_after(events: QuerySet[AccessEvent], after: tuple[int, int], limit: int) -> list[Any]:
    """The first `limit` settled events after `after`, in (xact, id) order."""
    page = (
        events.annotate(xact_text=RawSQL("xact::text", []))
        .filter(
            RawSQL(  # noqa: S611 (constant SQL; the cursor is a parameter)
                f"(xact, id) > (%s::text::xid8, %s) AND {SETTLED}",
                [str(after[0]), after[1]],
                output_field=BooleanField(),
            )
        )
        .order_by(RawSQL("xact", []).asc(), "id")
    )
    return list(page[:limit])


def follow(
    events: QuerySet[AccessEvent], after: tuple[int, int], limit: int, wait: int
) -> list[Any]:
    deadline = time.monotonic() + wait
    while not (found := events_after(events, after, limit)) and time.monotonic() < deadline:
        time.sleep(min(TICK, max(0.0, deadline - time.monotonic())))
    return found


class SecurityEventSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The event's id (unique; not its order).")
    at = serializers.CharField(help_text="When it happened (RFC 3339, UTC).")
    action = serializers.ChoiceField(
        choices=AccessEvent.Action.values, help_text="What happened (stable codes)."
    )
    user = serializers.IntegerField(
        allow_null=True, help_text="The account's id; null when no account matched."
    )
    username = serializers.CharField(allow_blank=True, help_text="The username as it was then.")
    address = serializers.CharField(allow_null=True, help_text="The client's IP address.")
    object_type = serializers.CharField(
        allow_blank=True, help_text="What was looked at (conversation, export, ledger...)."
    )
    object_id = serializers.CharField(allow_blank=True, help_text="Its id, as text.")
    detail = serializers.DictField(
        child=serializers.JSONField(), help_text="More about it (`via`: portal or api...)."
    )


class EventsView(APIView):
    permission_classes = [IsAuthenticated, HasRole]

    @extend_schema(
        operation_id="events_list",
        summary="Access and security events after a cursor (long-polls with wait)",
        parameters=[
            *pages.parameters("The cursor of the last page (omit to start at the beginning)."),
            OpenApiParameter(
                "wait",
                {"type": "integer", "minimum": 0, "maximum": MAX_WAIT},
                description=f"Seconds to wait for new events when none are ready (0-{MAX_WAIT}).",
            ),
        ],
        responses={200: pages.envelope("EventsPage", SecurityEventSerializer(many=True))},
    )
    def get(self, request: Request) -> Response:
        events = access_events_for_user(request)
        after, limit, wait = cursor_of(request), pages.limit_of(request), wait_of(request)
        found = follow(events, after, limit, wait)
        results = [as_json(event) for event in found]
        mine = AccessEvent.Action.READ_EVENTS, request.user.pk
        if any((event.action, event.user_id) != mine for event in found):
            detail = {"via": "api", "count": len(found), "first": found[0].pk, "last": found[-1].pk}
            record_access(request, AccessEvent.Action.READ_EVENTS, "access_events", "", detail)
        last = f"{found[-1].xact_text}.{found[-1].pk}" if found else None
        cursor = last or request.query_params.get("after") or None
        return pages.page(request, results, cursor, len(found) == limit)


urlpatterns = [path("events/", EventsView.as_view(), name="api-events")]
