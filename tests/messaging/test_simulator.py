import hashlib
import hmac
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from archive.verify import verify_ledger
from messaging import simulator
from messaging.models import Channel, Conversation, Message, StatusEvent
from messaging.sequencer import process_deliveries
from messaging.statuses import current_statuses
from tests.messaging.conftest import SECRET


class Receiver(BaseHTTPRequestHandler):
    """A stand-in portal on loopback that checks signatures like the real endpoint."""

    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(self.headers["X-Hub-Signature-256"], expected)
        Receiver.received.append(body)
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/webhooks/whatsapp/"
    server.shutdown()


def test_it_posts_files_signed_with_the_app_secret(receiver, tmp_path, capsys):
    payload = tmp_path / "one.json"
    payload.write_bytes(b'{"entry":[]}')
    call_command("simulate_webhook", str(payload), "--url", receiver)
    assert Receiver.received == [b'{"entry":[]}']
    assert "HTTP 200" in capsys.readouterr().out


def test_it_fails_loudly_when_the_portal_refuses(receiver, tmp_path, settings):
    settings.WHATSAPP_APP_SECRET = "not-the-portals-secret"
    payload = tmp_path / "one.json"
    payload.write_bytes(b"{}")
    with pytest.raises(CommandError, match="answered 401"):
        call_command("simulate_webhook", str(payload), "--url", receiver)


@pytest.mark.django_db
def test_it_seeds_the_demo_once_through_the_webhook(receiver, settings):
    settings.LOCAL_RUN = True
    call_command("seed_demo", "--url", receiver)
    call_command("seed_demo", "--url", receiver)
    assert len(Receiver.received) == len(simulator.demo_bodies(0))
    assert Channel.objects.count() == 1


@pytest.mark.django_db
def test_it_builds_demo_conversations_that_archive_cleanly(post):
    Channel.objects.create(**simulator.DEMO_CHANNEL)
    for body in simulator.demo_bodies(1_764_000_000):
        assert post(body).status_code == 200
    process_deliveries()
    assert Conversation.objects.count() == len(simulator.DEMO_CLIENTS)
    assert Message.objects.filter(direction="out").count() == len(simulator.DEMO_CLIENTS)
    assert StatusEvent.objects.count() == 3 * len(simulator.DEMO_CLIENTS)
    channel = Channel.objects.get()
    assert set(current_statuses(["wamid.demo-0-r"], channel.pk).values()) == {"read"}
    assert verify_ledger().intact
