"""Who may see and change what: one checked access function per kind of object, used by every
view (STYLE.md). Views never query a protected model directly.

Reading the archive needs `review.read_archive` (every role); changing review work needs the
permission for that change. A user without it gets a 403 that says so; an object that does not
exist is a 404 whoever asks.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from access.lockout import client_address
from archive import inflight
from messaging.models import Attachment, Conversation, Message
from review import search
from review.models import AccessEvent, Flag, SavedSearch

READ = "review.read_archive"
TAG = "review.tag_archive"
RAISE = "review.raise_flag"
DECIDE = "review.decide_flag"
ACCESS_LOG = "review.view_accessevent"


def acting_user(request: HttpRequest) -> Any:
    """The logged-in user (every portal view is behind role_required)."""
    user = request.user
    if not user.is_authenticated:
        raise PermissionDenied("Log in first.")
    return user


def require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"Your role does not allow this ({permission.split('.')[1]}).")


def conversations_for_user(request: HttpRequest) -> QuerySet[Conversation]:
    require(request, READ)
    return Conversation.objects.all()


def conversation_for_user(request: HttpRequest, pk: int, permission: str = READ) -> Conversation:
    require(request, READ)
    require(request, permission)
    return get_object_or_404(
        Conversation.objects.select_related("channel", "participant", "summary"), pk=pk
    )


def messages_for_user(request: HttpRequest) -> QuerySet[Message]:
    require(request, READ)
    return Message.objects.all()


def message_for_user(request: HttpRequest, pk: int, permission: str = READ) -> Message:
    require(request, READ)
    require(request, permission)
    return get_object_or_404(Message.objects.select_related("conversation", "channel"), pk=pk)


def attachment_for_user(request: HttpRequest, message_pk: int) -> Attachment:
    require(request, READ)
    return get_object_or_404(
        Attachment.objects.select_related("file", "message"),
        message_id=message_pk,
        outcome=Attachment.Outcome.STORED,
    )


def flags_for_user(request: HttpRequest) -> QuerySet[Flag]:
    require(request, READ)
    return Flag.objects.all()


def flag_for_user(request: HttpRequest, pk: int, permission: str = READ) -> Flag:
    require(request, READ)
    require(request, permission)
    return get_object_or_404(
        Flag.objects.select_related("conversation", "message", "lexicon_policy", "assignee"),
        pk=pk,
    )


def saved_searches_for_user(request: HttpRequest) -> QuerySet[SavedSearch]:
    """A user's own saved searches: nobody sees another's."""
    require(request, READ)
    return SavedSearch.objects.filter(user_id=acting_user(request).pk)


def search_lists_for_user(request: HttpRequest) -> search.Lists:
    """The search page's filters' channels and tags and the user's own saved searches (as
    saved_searches_for_user), read in one statement (search.page_lists)."""
    require(request, READ)
    return search.page_lists(acting_user(request).pk)


def access_events_for_user(request: HttpRequest) -> QuerySet[AccessEvent]:
    require(request, ACCESS_LOG)
    return AccessEvent.objects.all()


def record_access(
    request: HttpRequest,
    action: str,
    object_type: str = "",
    object_id: object = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """An access event: who, when, from where, what. Written in the request's transaction,
    as the statement the ORM's create() would send, without building the model and its
    statement for each request (~0.3 of its 0.7 ms on every search page, docs/SCALE.md §7t).
    `at` is the database's clock (db_default), `xact` the writing transaction's id."""
    with connection.cursor() as cursor:
        cursor.execute(_RECORD, _event(request, action, object_type, object_id, detail))


@contextmanager
def recording(
    request: HttpRequest,
    action: str,
    object_type: str = "",
    object_id: object = "",
    detail: dict[str, Any] | None = None,
) -> Iterator[None]:
    """record_access, sent to PostgreSQL when the block starts and its answer read when it ends
    (archive.inflight): the event's round trip and commit overlap what the block does, the
    page's template, and the block still cannot end before the event is committed, or it
    raises. The block must not use the database (docs/SCALE.md §7x)."""
    values = _event(request, action, object_type, object_id, detail)
    with inflight.sent(_RECORD, [None if v is None else str(v) for v in values]):
        yield


def _event(
    request: HttpRequest,
    action: str,
    object_type: str,
    object_id: object,
    detail: dict[str, Any] | None,
) -> list[Any]:
    user = acting_user(request)
    address = _ADDRESS.get_prep_value(client_address(request))  # IPv6 normalised as the ORM does
    return [
        user.pk,
        user.get_username(),
        address,
        action,
        object_type,
        str(object_id),
        json.dumps(detail or {}),
    ]


_ADDRESS = AccessEvent._meta.get_field("address")
_RECORD = (
    f"INSERT INTO {AccessEvent._meta.db_table}"  # noqa: S608 - the model's own table
    " (user_id, username, address, action, object_type, object_id, detail)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)"
)
