"""`/webhooks/whatsapp/`: the Cloud API's subscription handshake (GET) and deliveries (POST).

A POST is checked (X-Hub-Signature-256 over the raw bytes, app secret, constant-time compare of
bytes) and, when signed, committed to the delivery inbox as it came, before the 200: no parsing,
no media, no email here. Whatever the body is, a valid signer's bytes are evidence. The sequencer
(messaging/sequencer.py) seals them afterwards.
"""

import hashlib
import hmac
import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from messaging.inbox import wake_sequencer
from messaging.models import Delivery

security = logging.getLogger("clientwindow.security")
KEPT_HEADERS = (
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "HTTP_USER_AGENT",
    "HTTP_X_HUB_SIGNATURE_256",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_TRANSFER_ENCODING",
)
READ_SIZE = 64 * 1024  # an unsized (chunked) body is read in pieces of this many bytes


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _handshake(request)
    return _delivery(request)


def _handshake(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("hub.verify_token", "").encode()
    expected = settings.WHATSAPP_VERIFY_TOKEN.encode()
    if request.GET.get("hub.mode") != "subscribe" or not expected:
        return HttpResponse("not a subscription request", status=403, content_type="text/plain")
    if not hmac.compare_digest(token, expected):
        _reject(request, "verify_token")
        return HttpResponse("verify token mismatch", status=403, content_type="text/plain")
    return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")


def _delivery(request: HttpRequest) -> HttpResponse:
    limit = settings.WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return HttpResponse("bad Content-Length", status=400, content_type="text/plain")
    if declared > limit:
        _reject(request, "too_large")
        return HttpResponse("body too large", status=413, content_type="text/plain")
    body = request.read(limit + 1) if declared else _unsized_body(request, limit + 1)
    if len(body) > limit:
        _reject(request, "too_large")
        return HttpResponse("body too large", status=413, content_type="text/plain")
    reason = signature_problem(body, request.META.get("HTTP_X_HUB_SIGNATURE_256"))
    if reason:
        _reject(request, reason)
        return HttpResponse("invalid signature", status=401, content_type="text/plain")
    headers = {k: request.META[k] for k in KEPT_HEADERS if k in request.META}
    Delivery.objects.create(
        body=body, headers=headers, remote_addr=request.META.get("REMOTE_ADDR") or None
    )
    wake_sequencer()
    return HttpResponse("ok", content_type="text/plain")


def _unsized_body(request: HttpRequest, most: int) -> bytes:
    """A body sent without Content-Length (Transfer-Encoding: chunked), at most `most` bytes.

    Django limits its request stream to the declared length, 0 here, so it reads as empty; the
    WSGI server's own input is read to its end instead. Servers that de-chunk say so with
    wsgi.input_terminated (gunicorn, uWSGI, mod_wsgi); a request that declares neither a
    length nor chunking has no body (RFC 9112 6.3), and nothing is read."""
    meta = request.META
    chunked = "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not (chunked or meta.get("wsgi.input_terminated")):
        return b""
    stream, pieces, size = meta["wsgi.input"], [], 0
    while size < most:
        piece = stream.read(min(READ_SIZE, most - size))
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
    return b"".join(pieces)


def signature_problem(body: bytes, header: str | None) -> str:
    """Why `header` does not sign `body` ("" when it does)."""
    secret = settings.WHATSAPP_APP_SECRET.encode()
    if not secret:
        return "no_app_secret"
    if not header:
        return "missing"
    try:
        given = header.strip().encode("ascii").lower()
    except UnicodeEncodeError:
        return "non_ascii"
    if not given.startswith(b"sha256=") or len(given) != 7 + 64:
        return "malformed"
    expected = b"sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    return "" if hmac.compare_digest(given, expected) else "mismatch"


def _reject(request: HttpRequest, reason: str) -> None:
    security.warning(
        "webhook refused: %s from %s", reason, request.META.get("REMOTE_ADDR", "unknown")
    )
    # One statement, so concurrent refusals never lose a count.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO messaging_rejectedwebhook (day, reason, count) VALUES (%s, %s, 1)"
            " ON CONFLICT (day, reason)"
            " DO UPDATE SET count = messaging_rejectedwebhook.count + 1",
            [timezone.now().date(), reason],
        )
