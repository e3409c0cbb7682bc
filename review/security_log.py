"""The security events sink: every access event also as one JSON line for a SIEM.

With SECURITY_EVENTS_SYSLOG set, each AccessEvent is sent once its transaction commits (an event
rolled back never leaves) as the JSON object of `as_json()` — the same fields, named the same, as
the events API (api/events.py):

- `udp://host:port`: one RFC 5424 syslog message per event (facility authpriv, severity notice,
  or warning for failures and lockouts; APP-NAME `clientwindow`, MSGID the action), the JSON as
  its MSG. UDP never blocks: a datagram nobody receives is lost, as syslog over UDP always is.
- `tcp://host:port`: the same messages, RFC 6587 octet-counted, on a connection opened for the
  event with a short timeout.
- anything else: a file path; one JSON line per event is appended.

A sink that is down never fails or holds the request: the event is already in the database (the
events API serves it), and a warning is logged naming the action and the event id only.
"""

import json
import logging
import os
import socket
import threading
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from .models import AccessEvent

logger = logging.getLogger(__name__)

FACILITY_AUTHPRIV = 10
NOTICE, WARNING = 5, 4
ALARMS = {"login_failed", "locked_out", "mfa_failed", "token_refused"}
TCP_TIMEOUT = 0.5  # seconds: a request waits no longer than this for a stuck collector
_file_lock = threading.Lock()  # one line at a time from a process's threads


def as_json(event: AccessEvent) -> dict[str, Any]:
    """An event under the field names SIEM parsers are written against: never rename them."""
    return {
        "id": event.pk,
        "at": event.at.astimezone(UTC).isoformat().replace("+00:00", "Z") if event.at else None,
        "action": event.action,
        "user": event.user_id,
        "username": event.username,
        "address": event.address,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "detail": event.detail,
    }


def after_commit(event: AccessEvent) -> None:
    """Send `event` once the transaction that wrote it commits (called by AccessEvent.save)."""
    if settings.SECURITY_EVENTS_SYSLOG:
        transaction.on_commit(lambda: send(event, settings.SECURITY_EVENTS_SYSLOG))


def send(event: AccessEvent, target: str) -> None:
    if event.at is None or not hasattr(event.at, "astimezone"):
        event.refresh_from_db(fields=["at"])  # `at` is the database's clock (db_default)
    line = json.dumps(as_json(event), ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        _write(target, event, line)
    except (OSError, ValueError) as error:  # down, unreachable, or a malformed address
        logger.warning(
            "security events sink %s refused event %s (%s): %s",
            _safe(target),
            event.pk,
            event.action,
            type(error).__name__,
        )


def _write(target: str, event: AccessEvent, line: str) -> None:
    url = urlsplit(target)
    if url.scheme in {"udp", "tcp"}:
        address = (url.hostname or "localhost", url.port or 514)
        message = _syslog(event, line)
        if url.scheme == "udp":
            with socket.socket(_family(address), socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto(message, address)
        else:
            with socket.create_connection(address, timeout=TCP_TIMEOUT) as sock:
                sock.sendall(b"%d " % len(message) + message)
        return
    with _file_lock, open(target, "a", encoding="utf-8") as file:  # noqa: PTH123
        file.write(line + "\n")


def _syslog(event: AccessEvent, line: str) -> bytes:
    severity = WARNING if event.action in ALARMS else NOTICE
    stamp = event.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    host = socket.gethostname() or "-"
    header = f"<{FACILITY_AUTHPRIV * 8 + severity}>1 {stamp} {host} clientwindow {os.getpid()}"
    return f"{header} {event.action} - ".encode() + b"\xef\xbb\xbf" + line.encode()


def _family(address: tuple[str, int]) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET


def _safe(target: str) -> str:
    """The sink, for a log line: no path, no credentials, whatever the setting holds."""
    url = urlsplit(target)
    return f"{url.scheme}://{url.hostname}" if url.scheme in {"udp", "tcp"} else "file"
