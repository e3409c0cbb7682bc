"""Cursor pages: `?after=<cursor>&limit=<n>`, answered with `{"results": [...], "next": ...}`.

A cursor is the position of the last item a page returned (a ledger seq, or an opaque token where
the order has no seq), so a client that stops resumes where it was, and items that arrive while
it reads are neither skipped nor repeated. `next` is the whole address of the following page;
null when the page was the last one so far. A malformed `after` or `limit` is a 400 that says so.
"""

from collections.abc import Sequence
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_SEQ = 2**63 - 1


def limit_of(request: Request, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    return integer(request, "limit", default, 1, maximum)


def after_seq(request: Request) -> int:
    """`after` as a ledger seq (-1 when absent: from the start)."""
    return integer(request, "after", -1, -1, MAX_SEQ)


def integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    """Query parameter `name` as a whole number from `low` to `high` (`default` when absent),
    else a 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    digits = raw.removeprefix("-")  # one sign at most: "--5" is no number
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 20:
        raise ValidationError({name: [f"must be a whole number from {low} to {high}"]})
    value = int(raw)
    if not low <= value <= high:
        raise ValidationError({name: [f"must be a whole number from {low} to {high}"]})
    return value


def page(request: Request, results: Sequence[Any], cursor: str | None, full: bool) -> Response:
    """The page: `next` carries the cursor when the page was full (more may follow)."""
    following = None
    if full and cursor is not None:
        query = request.query_params.copy()
        query["after"] = cursor
        following = request.build_absolute_uri(request.path + "?" + query.urlencode())
    return Response({"results": list(results), "next": following, "cursor": cursor})


def parameters(after_help: str) -> list[OpenApiParameter]:
    return [
        OpenApiParameter("after", OpenApiTypes.STR, description=after_help),
        OpenApiParameter(
            "limit",
            OpenApiTypes.INT,
            description=f"Items per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}).",
        ),
    ]


def envelope(name: str, item: serializers.BaseSerializer[Any]) -> serializers.Serializer[Any]:
    """The schema of a page of `item`."""
    return inline_serializer(
        name,
        {
            "results": item,
            "next": serializers.URLField(
                allow_null=True, help_text="The following page; null when this one was the last."
            ),
            "cursor": serializers.CharField(
                allow_null=True,
                help_text="The position after this page's last item (pass as `after`).",
            ),
        },
    )
