"""Media is fetched from a local server speaking the Graph API's real response shapes."""

import base64
import hashlib
import io
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from archive import objectstore
from archive.storage_config import storage_options
from archive.verify import verify_ledger
from messaging import graph, hooks, media
from messaging.media import fetch_pending_media
from messaging.models import Attachment, Channel, MediaAttempt, MediaFile, Message
from messaging.sequencer import process_deliveries
from tests.messaging.conftest import fixture_bytes
from tests.s3 import s3_client

pytestmark = pytest.mark.django_db
FILESYSTEM = "archive.objectstore.FileStore"
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
TOKEN = "EAAG-channel-token"


class Graph(BaseHTTPRequestHandler):
    """GET /v25.0/<media id> and GET /files/<name>, as Meta answers them."""

    files: dict[str, bytes] = {}
    plan: list[int] = []  # status codes to answer first, one per request
    requests: list[str] = []
    sha256: str | None = None
    download_url: str | None = None

    def do_GET(self) -> None:
        Graph.requests.append(self.path)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, b'{"error":{"message":"Invalid OAuth access token"}}')
        if Graph.plan:
            return self._send(Graph.plan.pop(0), b"{}")
        if self.path.startswith("/v25.0/"):
            media_id = self.path.rsplit("/", 1)[1]
            if media_id not in Graph.files:
                return self._send(404, b'{"error":{"code":100}}')
            body = Graph.files[media_id]
            info = {
                "messaging_product": "whatsapp",
                "url": Graph.download_url
                or f"http://127.0.0.1:{self.server.server_port}/files/{media_id}",
                "mime_type": "image/png",
                "sha256": Graph.sha256 or hashlib.sha256(body).hexdigest(),
                "file_size": len(body),
                "id": media_id,
            }
            return self._send(200, json.dumps(info).encode(), "application/json")
        return self._send(200, Graph.files[self.path.rsplit("/", 1)[1]], "image/png")

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if status in (301, 302):
            self.send_header("Location", "http://10.0.0.1/steal")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def meta(settings, tmp_path):
    Graph.files, Graph.plan, Graph.requests = {}, [], []
    Graph.sha256 = Graph.download_url = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), Graph)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.WHATSAPP_GRAPH_URL = f"http://127.0.0.1:{server.server_port}/v25.0"
    settings.MEDIA_ROOT = tmp_path
    yield Graph
    server.shutdown()


@pytest.fixture
def image_message(post, channels_for):
    body = fixture_bytes("message-image__netflie-php.json")
    (channel,) = channels_for(body)
    Channel.objects.filter(pk=channel.pk).update(access_token=TOKEN)
    post(body)
    process_deliveries()
    return Message.objects.get()


def media_id(message):
    return message.payload["image"]["id"]


def test_it_stores_media_content_addressed_and_seals_it(meta, image_message):
    meta.files[media_id(image_message)] = PHOTO
    assert fetch_pending_media() == 1
    attachment = Attachment.objects.get()
    assert attachment.outcome == "stored"
    digest = hashlib.sha256(PHOTO).hexdigest()
    assert attachment.file.sha256 == digest
    with default_storage.open(attachment.file.storage_name) as stored:
        assert stored.read() == PHOTO
    assert verify_ledger().intact


def test_it_accepts_meta_s_base64_sha256(meta, image_message):
    meta.files[media_id(image_message)] = PHOTO
    meta.sha256 = base64.b64encode(hashlib.sha256(PHOTO).digest()).decode()
    fetch_pending_media()
    assert Attachment.objects.get().outcome == "stored"


def test_it_stores_the_same_bytes_once(meta, post, channels_for, image_message):
    other = fixture_bytes("message-image-with-url__meta-docs.json")
    channels_for(other)
    Channel.objects.update(access_token=TOKEN)
    post(other)
    process_deliveries()
    for message in Message.objects.all():
        meta.files[media_id(message)] = PHOTO
    assert fetch_pending_media() == 2
    assert (MediaFile.objects.count(), Attachment.objects.count()) == (1, 2)


def test_it_retries_a_server_error_with_backoff(meta, image_message):
    meta.files[media_id(image_message)] = PHOTO
    meta.plan = [500]
    assert (media.count_due(), len(media.due_messages())) == (1, 1)
    assert fetch_pending_media() == 0
    assert MediaAttempt.objects.get().error == "media lookup: HTTP 500"
    assert (media.count_due(), len(media.due_messages())) == (0, 0)  # the health page's figure
    assert fetch_pending_media() == 0  # not due yet: the retry waits
    MediaAttempt.objects.update(attempted_at=timezone.now() - timedelta(minutes=5))
    assert (media.count_due(), len(media.due_messages())) == (1, 1)
    assert fetch_pending_media() == 1
    assert (media.count_due(), len(media.due_messages())) == (0, 0)


def test_it_retries_a_hash_that_does_not_match(meta, image_message):
    meta.files[media_id(image_message)] = PHOTO
    meta.sha256 = "0" * 64
    fetch_pending_media()
    assert "sha256" in MediaAttempt.objects.get().error
    assert not Attachment.objects.exists()


def test_it_records_a_media_id_meta_no_longer_serves(meta, image_message):
    assert fetch_pending_media() == 1
    attachment = Attachment.objects.get()
    assert (attachment.outcome, attachment.reason) == ("unavailable", "media lookup: HTTP 404")


def test_it_refuses_a_redirect(meta, image_message):
    meta.files[media_id(image_message)] = PHOTO
    meta.plan = [302]  # to http://10.0.0.1/steal
    fetch_pending_media()
    assert Attachment.objects.get().reason == "media lookup: redirect refused"
    assert not any("steal" in r for r in meta.requests)


def test_it_never_downloads_from_a_host_that_is_not_meta_s(meta, image_message):
    meta.files[media_id(image_message)] = PHOTO
    meta.download_url = "https://files.example.net/photo.png"
    fetch_pending_media()
    attachment = Attachment.objects.get()
    assert (attachment.outcome, attachment.reason) == ("refused", "media URL is not on a Meta host")


def test_it_refuses_media_above_the_cap(meta, image_message, settings):
    settings.WHATSAPP_MEDIA_MAX_BYTES = 100
    meta.files[media_id(image_message)] = PHOTO
    fetch_pending_media()
    assert Attachment.objects.get().reason == "media larger than 100 bytes"


def test_it_gives_up_when_the_seven_days_are_over(meta, image_message):
    meta.files[media_id(image_message)] = PHOTO
    meta.plan = [503]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("messaging.media.MEDIA_ID_LIFETIME", timedelta(seconds=-1))
        fetch_pending_media()
    assert Attachment.objects.get().outcome == "unavailable"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1", True),
        ("https://scontent.xx.fbcdn.net/v/t1/1.jpg", True),
        ("http://lookaside.fbsbx.com/x", False),
        ("https://fbcdn.net.evil.example/x", False),
        ("https://169.254.169.254/latest/meta-data", False),
        ("https://[::1]/x", False),
        ("file:///etc/passwd", False),
    ],
)
def test_it_allows_only_meta_s_media_hosts(url, allowed, settings):
    settings.WHATSAPP_GRAPH_URL = "https://graph.facebook.com/v25.0"
    assert graph.allowed_url(url) is allowed


UNREACHABLE = "s3://x?endpoint=http://127.0.0.1:9&addressing=path"


@pytest.fixture
def bucket_down(s3_server, settings):
    """The records store is a bucket nobody answers for (credentials are set: tests/s3.py)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "records": storage_options("STORAGE_URL", UNREACHABLE, "archive.objectstore.FileStore"),
    }


def test_it_retries_media_while_the_bucket_is_unreachable(
    meta, image_message, bucket_down, settings, tmp_path
):
    meta.files[media_id(image_message)] = PHOTO
    assert fetch_pending_media() == 0
    # "failed: EndpointConnectionError" until S3Store.exists wraps boto errors in StoreError
    assert MediaAttempt.objects.get().error.startswith(("records store:", "failed:"))
    assert not Attachment.objects.exists()
    settings.STORAGES = {**settings.STORAGES, "records": {"BACKEND": FILESYSTEM}}
    MediaAttempt.objects.update(attempted_at=timezone.now() - timedelta(minutes=5))
    assert fetch_pending_media() == 1


def test_it_seals_what_arrives_while_the_bucket_is_unreachable(bucket_down, post, channels_for):
    body = fixture_bytes("message-image__netflie-php.json")
    channels_for(body)
    assert post(body).status_code == 200
    process_deliveries()
    assert Message.objects.get().type == "image"
    assert verify_ledger().intact


def test_one_message_s_failure_does_not_stop_the_others(meta, post, channels_for, monkeypatch):
    for name in ("message-image__netflie-php.json", "message-image-with-url__meta-docs.json"):
        body = fixture_bytes(name)
        channels_for(body)
        post(body)
    process_deliveries()
    Channel.objects.update(access_token=TOKEN)
    first, second = Message.objects.order_by("pk")
    meta.files[media_id(first)] = meta.files[media_id(second)] = PHOTO

    def refuse_the_first(attachment, media):
        if attachment.message_id == first.pk:
            raise RuntimeError("a hook failed")

    monkeypatch.setitem(hooks._registry, "attached", [refuse_the_first])
    assert fetch_pending_media() == 1
    assert Attachment.objects.get().message_id == second.pk
    assert MediaAttempt.objects.get(message=first).error == "failed: RuntimeError"


@pytest.mark.django_db
def test_the_same_bytes_stored_twice_are_one_object_in_the_bucket(worm_bucket: str) -> None:
    """Content addressing holds in the bucket too: a second store of the same bytes (from
    memory, then from a file) uploads nothing, so the key keeps one version."""
    content = b"the same scan, sent twice" * 100
    first = media.store_file(content, "application/pdf")
    second = media.store_file(io.BytesIO(content), "application/pdf")
    assert second.pk == first.pk
    client = s3_client(objectstore.records().endpoint_url)  # type: ignore[attr-defined]
    versions = client.list_object_versions(Bucket=worm_bucket)["Versions"]
    assert [version["Key"] for version in versions] == [first.storage_name]
