"""Minimal WSGI apps served by the same gunicorn configuration as ClientWindow: the ceilings of
the webhook latency benchmark (tests/performance/test_bench_capture.py).

- `ok`: reads the body and answers 200 "ok" (no Django, no database).
- `inbox`: the webhook's essential work without Django: read the body, check X-Hub-Signature-256
  (HMAC-SHA256 with WHATSAPP_APP_SECRET, constant-time compare), then one INSERT + COMMIT of the
  body, kept headers and address into a scratch table shaped like messaging_delivery, over one
  psycopg connection per worker thread kept open (BENCH_DSN), as PERFORMANCE-CEILINGS.md's
  "HMAC + one INSERT + COMMIT (the inbox)" row.
- `clientwindow_nowake`: diagnostic only, not a ceiling: ClientWindow's own WSGI application
  with messaging.webhooks.wake_sequencer replaced by a no-op, to show what queueing the
  django-q2 task after each delivery costs.
"""

import hashlib
import hmac
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

StartResponse = Callable[..., Any]
KEPT = ("CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_USER_AGENT", "HTTP_X_HUB_SIGNATURE_256")
_local = threading.local()


def _body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def _answer(start_response: StartResponse, status: str, text: bytes) -> Iterable[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text]


def ok(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    _body(environ)
    return _answer(start_response, "200 OK", b"ok")


def inbox(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    body = _body(environ)
    secret = os.environ["WHATSAPP_APP_SECRET"].encode()
    given = environ.get("HTTP_X_HUB_SIGNATURE_256", "").strip().encode("ascii").lower()
    expected = b"sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(given, expected):
        return _answer(start_response, "401 Unauthorized", b"invalid signature")
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(os.environ["BENCH_DSN"], autocommit=True)
    conn.execute(
        "INSERT INTO bench_inbox (body, headers, remote_addr) VALUES (%s, %s, %s)",
        [body, Jsonb({k: environ[k] for k in KEPT if k in environ}), environ.get("REMOTE_ADDR")],
    )
    return _answer(start_response, "200 OK", b"ok")


def clientwindow_nowake(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _nowake_app()(environ, start_response)


def _nowake_app() -> Callable[..., Iterable[bytes]]:
    app = getattr(_nowake_app, "app", None)
    if app is None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientwindow.settings")
        from django.core.wsgi import get_wsgi_application

        app = get_wsgi_application()
        import messaging.webhooks

        messaging.webhooks.wake_sequencer = lambda: None  # type: ignore[assignment]
        _nowake_app.app = app  # type: ignore[attr-defined]
    return app
