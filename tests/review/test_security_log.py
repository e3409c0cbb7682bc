"""SECURITY_EVENTS_SYSLOG: every access event as a JSON line, to a real socket or a file."""

import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from review.models import AccessEvent

FIELDS = {"id", "at", "action", "user", "username", "address", "object_type", "object_id", "detail"}


def failed_sign_in(username: str = "mallory") -> AccessEvent:
    return AccessEvent.objects.create(
        username=username, action=AccessEvent.Action.LOGIN_FAILED, address="192.0.2.7"
    )


@pytest.fixture
def collector() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


def test_it_sends_each_event_as_rfc5424_syslog_over_udp_after_commit(
    db: None, settings: Any, collector: socket.socket, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SECURITY_EVENTS_SYSLOG = f"udp://127.0.0.1:{collector.getsockname()[1]}"
    with django_capture_on_commit_callbacks(execute=True):
        event = failed_sign_in()
    datagram = collector.recv(65536)
    header, line = datagram.split(b" - \xef\xbb\xbf", 1)
    assert header.startswith(b"<84>1 ")  # authpriv.warning: a failure
    assert header.endswith(b" clientwindow %d login_failed" % os.getpid())
    sent = json.loads(line)
    assert set(sent) == FIELDS and sent["id"] == event.pk and sent["username"] == "mallory"
    assert sent["at"].endswith("Z") and sent["address"] == "192.0.2.7"


def test_it_sends_nothing_for_an_event_rolled_back(
    db: None, settings: Any, collector: socket.socket, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SECURITY_EVENTS_SYSLOG = f"udp://127.0.0.1:{collector.getsockname()[1]}"
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        failed_sign_in()
        raise RuntimeError
    assert callbacks == []


def test_it_appends_json_lines_to_a_file(
    db: None, settings: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SECURITY_EVENTS_SYSLOG = str(tmp_path / "security.jsonl")
    with django_capture_on_commit_callbacks(execute=True):
        first, second = failed_sign_in("one"), failed_sign_in("two")
    lines = (tmp_path / "security.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [first.pk, second.pk]
    assert all(set(json.loads(line)) == FIELDS for line in lines)


def test_it_only_warns_when_the_sink_is_down(
    db: None,
    settings: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nobody listens there once closed
    settings.SECURITY_EVENTS_SYSLOG = f"tcp://127.0.0.1:{port}"
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        event = failed_sign_in("secret-name")
    assert AccessEvent.objects.filter(pk=event.pk).exists()
    assert f"event {event.pk} (login_failed)" in caplog.text
    assert "secret-name" not in caplog.text
    settings.SECURITY_EVENTS_SYSLOG = str(tmp_path / "no-such-dir" / "x.jsonl")
    with django_capture_on_commit_callbacks(execute=True):
        failed_sign_in()  # an unwritable file is a warning too, never an error
    settings.SECURITY_EVENTS_SYSLOG = "udp://127.0.0.1:not-a-port"
    with django_capture_on_commit_callbacks(execute=True):
        failed_sign_in()  # and so is a malformed address


def test_it_does_nothing_when_unset(
    db: None, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SECURITY_EVENTS_SYSLOG = ""
    with django_capture_on_commit_callbacks() as callbacks:
        failed_sign_in()
    assert callbacks == []
