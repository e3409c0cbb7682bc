"""The SMTP gateway for staff replies (bridge/gateway.py, `manage.py run_mail_gateway`), spoken
to with smtplib. It stores from its own thread and connection, so these tests use committed rows
(the `committed` fixture wipes them afterwards)."""

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connections

from bridge import gateway as gateway_module
from bridge import inbound, tokens
from bridge.gateway import controller
from bridge.models import InboundEmail, Outbound, Route
from bridge.tokens import reply_address
from messaging.models import Channel
from tests.bridge.conftest import CLIENT, PNID, TOKEN, free_port, text_body
from tests.conftest import TEST_DB

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "reply.bank.example"
# a validly signed reply address (the gateway checks the signature, not the conversation)
ADDRESS = f"reply+c1.{tokens._signature(1, settings.SECRET_KEY)}@{DOMAIN}"


def raw_email(to: str = ADDRESS, message_id: str = "<gw-1@bank.example>") -> bytes:
    """Bytes a mail client might send: 8-bit text, dots at line starts, odd spacing."""
    return (
        b"From: Robert Miller <rm@bank.example>\r\n"
        b"To: " + to.encode() + b"\r\n"
        b"Subject: =?utf-8?q?Re=3A_Caf=C3=A9?=\r\n"
        b"Message-ID: " + message_id.encode() + b"\r\n"
        b"X-Odd:    spaced\t out   \r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b".A line starting with a dot\r\n"
        b"..and one with two\r\n"
        b"Caf\xc3\xa9 and a stray Latin-1 byte \xe9\r\n"
        b"trailing spaces   \r\n"
        b"\r\n"
    )


def stored_since(before: int) -> list[InboundEmail]:
    return list(InboundEmail.objects.filter(pk__gt=before).order_by("pk"))


def last_pk() -> int:
    return InboundEmail.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@pytest.fixture
def start_gateway(committed: None, settings: Any, monkeypatch: Any) -> Iterator[Callable[[], int]]:
    """Start the gateway (after the test has set what it needs); its port.

    The gateway stores from worker threads, each with its own connection; without a maximum
    age of 0 they would stay open after the test and keep the test database from being
    dropped at the end of the session."""
    settings.BRIDGE_REPLY_DOMAIN = DOMAIN
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    started: list[Any] = []

    def start() -> int:
        port = free_port()
        gateway = controller("127.0.0.1", port)
        gateway.start()
        started.append(gateway)
        return port

    yield start
    for gateway in started:
        gateway.stop()


def test_a_recipient_that_is_not_a_reply_address_is_refused_at_rcpt(start_gateway) -> None:
    port = start_gateway()
    before = last_pk()
    for recipient in (
        "rm@bank.example",  # an open relay would take this
        f"someone@{DOMAIN}",  # our domain, not a reply address
        f"reply+c1.{'a' * 26}@{DOMAIN}",  # shaped like a reply address, but not signed by us
        ADDRESS.replace(DOMAIN, "other.example"),  # a reply address of another domain
        f"reply+c1.{'a' * 26}@{DOMAIN}.evil.example",
    ):
        with smtplib.SMTP("127.0.0.1", port) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("rm@bank.example", [recipient], raw_email(recipient))
            code, text = refused.value.recipients[recipient]
            assert code == 550
            assert b"Not a valid reply address" in text
    assert stored_since(before) == []


def test_only_the_reply_addresses_of_a_mixed_envelope_are_kept(start_gateway) -> None:
    port = start_gateway()
    before = last_pk()
    upper = f"Reply+C2.{tokens._signature(2, settings.SECRET_KEY).upper()}@REPLY.Bank.Example"
    with smtplib.SMTP("127.0.0.1", port) as client:
        refused = client.sendmail(
            "rm@bank.example", [ADDRESS, "cc@bank.example", upper], raw_email()
        )
    assert list(refused) == ["cc@bank.example"]
    assert refused["cc@bank.example"][0] == 550
    (stored,) = stored_since(before)
    assert stored.envelope_to == [ADDRESS, upper]


def test_the_email_is_stored_byte_for_byte_with_its_envelope(start_gateway) -> None:
    port = start_gateway()
    before = last_pk()
    raw = raw_email()
    with smtplib.SMTP("127.0.0.1", port) as client:
        assert client.sendmail("bounces+rm@bank.example", [ADDRESS], raw) == {}
    (stored,) = stored_since(before)
    assert bytes(stored.raw) == raw
    assert stored.via == "smtp"
    assert stored.envelope_from == "bounces+rm@bank.example"
    assert stored.envelope_to == [ADDRESS]
    assert stored.message_id == "<gw-1@bank.example>"
    assert stored.state == "pending"
    assert stored.received_at is not None


def test_a_null_sender_is_recorded_as_such(start_gateway) -> None:
    port = start_gateway()
    before = last_pk()
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail("", [ADDRESS], raw_email(message_id="<gw-null@bank.example>"))
    (stored,) = stored_since(before)
    assert stored.envelope_from == "<>"


def test_data_larger_than_mail_max_bytes_is_refused_with_552(start_gateway, settings) -> None:
    settings.MAIL_MAX_BYTES = 2048
    port = start_gateway()
    before = last_pk()
    big = raw_email() + (b"x" * 70 + b"\r\n") * 40
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == "2048"
        # announced (MAIL FROM … SIZE=): refused before the data is sent
        with pytest.raises(smtplib.SMTPSenderRefused) as announced:
            client.sendmail("rm@bank.example", [ADDRESS], big)
        assert announced.value.smtp_code == 552
    with smtplib.SMTP("127.0.0.1", port) as client:
        # not announced: refused at the end of DATA
        client.ehlo()
        assert client.mail("rm@bank.example")[0] == 250
        assert client.rcpt(ADDRESS)[0] == 250
        code, text = client.data(big)
        assert code == 552
        assert b"Too much mail data" in text
    assert stored_since(before) == []
    with smtplib.SMTP("127.0.0.1", port) as client:  # just under the limit still goes
        small = raw_email(message_id="<gw-small@bank.example>")
        assert len(small) < 2048
        assert client.sendmail("rm@bank.example", [ADDRESS], small) == {}
    assert [bytes(s.raw) for s in stored_since(before)] == [small]


def test_a_database_failure_answers_451_so_the_sender_retries(start_gateway, monkeypatch) -> None:
    port = start_gateway()
    before = last_pk()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the database is down")

    monkeypatch.setattr(gateway_module.inbound, "receive", broken)
    with (
        smtplib.SMTP("127.0.0.1", port) as client,
        pytest.raises(smtplib.SMTPDataError) as failed,
    ):
        client.sendmail("rm@bank.example", [ADDRESS], raw_email())
    assert failed.value.smtp_code == 451
    assert stored_since(before) == []


def test_a_reply_through_the_gateway_reaches_the_client(start_gateway, capture, smtp, meta) -> None:
    """The whole way, committed: a Bcc'd reply (no reply address in To) is found by its
    envelope, and the client gets the text."""
    channel = Channel.objects.create(name="Desk", phone_number_id=PNID, access_token=TOKEN)
    Route.objects.create(channel=channel, email_recipients=["rm@bank.example"])
    conversation = capture(text_body("Please sell", wamid="wamid.GW1"))
    port = start_gateway()
    before = last_pk()
    address = reply_address(conversation.pk)
    raw = (
        b"From: Robert Miller <rm@bank.example>\r\nTo: undisclosed-recipients:;\r\n"
        b"Subject: Re: WhatsApp\r\nMessage-ID: <gw-flow@bank.example>\r\n\r\n"
        b"Sold at 101.\r\n\r\nOn Mon, Jane wrote:\r\n> Please sell\r\n"
    )
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail("rm@bank.example", [address], raw)
    (stored,) = stored_since(before)
    # anything older (left pending by another test) is not this test's to send
    InboundEmail.objects.filter(state="pending").exclude(pk=stored.pk).update(state="ignored")
    assert inbound.process_pending() == 1
    stored.refresh_from_db()
    assert stored.state == "sent", stored.reason
    assert stored.conversation == conversation
    (body,) = meta.sends()
    assert body["to"] == CLIENT
    assert body["text"]["body"] == "Sold at 101."
    assert Outbound.objects.get().email == stored
    assert smtp.received == []  # no notice: it went


def _test_database_url(variable: str) -> str:
    parts = urlsplit(os.environ[variable])
    return urlunsplit(parts._replace(path=f"/{TEST_DB}"))


def _wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the gateway exited: {process.communicate()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the gateway did not start listening")


@pytest.mark.skipif("DATABASE_URL" not in os.environ, reason="needs DATABASE_URL (make test)")
def test_manage_py_run_mail_gateway_accepts_replies_until_terminated(committed: None) -> None:
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": _test_database_url("DATABASE_URL"),
        "BRIDGE_REPLY_DOMAIN": DOMAIN,
        "MAIL_MAX_BYTES": "100000",
    }
    env.pop("DATABASE_OWNER_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_mail_gateway",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port, process)
        before = last_pk()
        raw = raw_email(message_id="<gw-command@bank.example>")
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == "100000"
            assert client.sendmail("rm@bank.example", [ADDRESS], raw) == {}
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("rm@bank.example", ["rm@bank.example"], raw)
        (stored,) = stored_since(before)
        assert bytes(stored.raw) == raw
        assert stored.envelope_to == [ADDRESS]
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert f"Mail gateway on 127.0.0.1:{port} for reply+…@{DOMAIN}" in stdout.decode()
