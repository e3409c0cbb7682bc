"""What the portal and the API accept at their edge, decided in one place.

PostgreSQL text cannot hold a NUL, Python's date arithmetic ends at 9999-12-31, and a JSON
parser recurses once per level of nesting: input that breaks any of these used to answer 500
deep inside a view (issue 13). Here:

- `RefuseMalformedInput`, a middleware: 400 for a path, query string or form body that carries a
  NUL or bytes that are not UTF-8 (which is how a lone surrogate arrives). The first wall only:
  forms still validate what they take.
- `JSONParser` for DRF: 400 for JSON nested deeper than MAX_JSON_DEPTH, or with a NUL or a lone
  surrogate in any string or key.
- `DateField` (forms) and `api_date_field()` (DRF): dates from EARLIEST to LATEST only, and
  `check_date()` for the domain's scopes (exports, legal holds) whoever builds them.
- `whole_number()`: a database id from a query or form value, or None.
"""

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any
from urllib.parse import unquote_to_bytes

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError

# Wide enough for any record a firm keeps; narrow enough that `date_to + 1 day` (search.py,
# exports/scope.py, retention/holds.py) and PostgreSQL's timestamps never overflow.
EARLIEST = date(1900, 1, 1)
LATEST = date(2200, 12, 31)
DATE_RANGE = f"Give a date between {EARLIEST.isoformat()} and {LATEST.isoformat()}."
MAX_JSON_DEPTH = 20  # an export request nests three levels
MAX_ID_DIGITS = 18  # every id fits a PostgreSQL bigint
# Capture paths answer for themselves: whatever a provider sends is stored, never refused here.
EXEMPT = ("/webhooks/", "/email/inbound/")
# What no PostgreSQL text holds: NUL, and surrogates (after json, only lone ones remain).
# messaging/hygiene.py replaces them in captured content; here they are refused.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _date_validators() -> list[Callable[[Any], None]]:
    return [MinValueValidator(EARLIEST, DATE_RANGE), MaxValueValidator(LATEST, DATE_RANGE)]


class DateField(forms.DateField):
    """A form's date, within EARLIEST..LATEST."""

    default_validators = _date_validators()


def api_date_field(**kwargs: Any) -> serializers.DateField:
    """A serializer's date, within EARLIEST..LATEST."""
    return serializers.DateField(validators=_date_validators(), **kwargs)


def check_date(day: date | None) -> None:
    if day is not None and not EARLIEST <= day <= LATEST:
        raise ValidationError(DATE_RANGE)


def whole_number(value: str) -> int | None:
    """An id as typed in a query or form: ASCII digits that fit a bigint, else None
    (str.isdigit() also accepts "²", which int() refuses)."""
    if value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS:
        return int(value)
    return None


def _problem(raw: bytes, where: str) -> str:
    try:
        text = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return f"The {where} is not UTF-8 text (a lone surrogate, or another encoding)."
    if "\x00" in text:
        return f"The {where} contains a NUL character, which no field accepts."
    return ""


def malformed(request: HttpRequest) -> str:
    """What is wrong with the request's path, query string or form body, or ""."""
    if request.path_info.startswith(EXEMPT):
        return ""
    if "\x00" in request.path_info:
        return "The address contains a NUL character."
    query = request.META.get("QUERY_STRING", "")
    problem = _problem(query.encode("iso-8859-1", "replace"), "query string")
    if problem or request.method != "POST":
        return problem
    if request.content_type == "application/x-www-form-urlencoded":
        return _problem(request.body, "form")
    if request.content_type == "multipart/form-data":
        for key, values in request.POST.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return "The form contains a NUL character, which no field accepts."
    return ""


class RefuseMalformedInput:
    """400, with a message, for what no view can use (see malformed())."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = malformed(request)
        if problem and request.path.startswith("/api/"):
            # the API's clients parse JSON: the RFC 9457 problem of api/problems.py, written
            # here because this floor cannot import the API's
            body = {
                "type": "urn:clientwindow:problem:parse_error",
                "title": "Bad Request",
                "status": 400,
                "detail": f"Bad request: {problem}",
            }
            return JsonResponse(body, status=400, content_type="application/problem+json")
        if problem:
            return HttpResponseBadRequest(
                f"Bad request: {problem}", content_type="text/plain; charset=utf-8"
            )
        return self.get_response(request)


def json_problem(data: Any) -> str:
    """Why parsed JSON cannot be used (too deep; a NUL or lone surrogate in a string), or ""."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if UNSTORABLE.search(value):
                return "JSON strings may not contain NUL characters or unpaired surrogates."
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"JSON may be nested at most {MAX_JSON_DEPTH} levels deep."
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return ""


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering 400 (not 500) for what the API cannot use."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as deep:
            raise ParseError(f"JSON may be nested at most {MAX_JSON_DEPTH} levels deep.") from deep
        problem = json_problem(data)
        if problem:
            raise ParseError(problem)
        return data
