"""Errors as RFC 9457 problem details (`application/problem+json`), for every API response.

Every 4xx and 5xx the API gives has the same body:

    {"type": "urn:clientwindow:problem:<code>", "title": "...", "status": 400,
     "detail": "...", "errors": {"field": ["message", ...]}}

`type` names the kind of problem (its code is DRF's: `invalid`, `parse_error`, `not_found`,
`permission_denied`, `not_authenticated`, `authentication_failed`, `throttled`,
`method_not_allowed`, `not_acceptable`, `unsupported_media_type`, `server_error`); `errors` is
present only when fields are at fault. docs/API.md lists them.
"""

from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:clientwindow:problem:"


def body(status_code: int, code: str, detail: str, errors: Any = None) -> dict[str, Any]:
    problem: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
    }
    if errors:
        problem["errors"] = errors
    return problem


def handler(error: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: its response, reshaped as a problem."""
    if isinstance(error, Http404):  # as DRF's own handler turns them
        error = exceptions.NotFound(*error.args)
    elif isinstance(error, PermissionDenied):
        error = exceptions.PermissionDenied(*error.args)
    response = exception_handler(error, context)
    if response is None or not isinstance(error, exceptions.APIException):
        return response  # not an API exception: Django's 500 (server_error below, for /api/)
    code, detail, errors = _described(error)
    response.data = body(response.status_code, code, detail, errors)
    response.content_type = MEDIA_TYPE
    return response


def _described(error: exceptions.APIException) -> tuple[str, str, Any]:
    if isinstance(error, exceptions.ValidationError):
        fields = error.detail
        if isinstance(fields, dict):
            named = ", ".join(sorted(str(k) for k in fields))
            return "invalid", f"The request is not valid ({named}).", fields
        messages = fields if isinstance(fields, list) else [fields]
        return "invalid", " ".join(str(m) for m in messages), None
    detail = error.detail
    code = getattr(detail, "code", None) or error.default_code
    return str(code), str(detail), None


def response(request: HttpRequest, status_code: int, code: str, detail: str) -> JsonResponse:
    """A problem from plain Django (unknown addresses, server errors) under /api/."""
    return JsonResponse(
        body(status_code, code, detail), status=status_code, content_type=MEDIA_TYPE
    )


STATUSES = (
    status.HTTP_400_BAD_REQUEST,
    status.HTTP_401_UNAUTHORIZED,
    status.HTTP_403_FORBIDDEN,
    status.HTTP_404_NOT_FOUND,
    status.HTTP_405_METHOD_NOT_ALLOWED,
    status.HTTP_406_NOT_ACCEPTABLE,
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    status.HTTP_429_TOO_MANY_REQUESTS,
)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a problem under /api/ (its clients parse JSON), the portal's page elsewhere."""
    if request.path.startswith("/api/"):
        return response(request, 500, "server_error", "The server failed; the error is logged.")
    return defaults.server_error(request)
