"""A deployment that spans machines, on loopback: two nodes, each running a gunicorn web server,
a `qcluster` worker and a sealer (`run_sequencer`) from an empty working directory of its own,
with its own var/, MEDIA_ROOT, EXPORT_ROOT and TMPDIR. They share only PostgreSQL (this session's
test database) and the S3 endpoint (moto: a compliance-locked records bucket and an exports
bucket). Meta's Graph API is a local server (tests/messaging/test_media.py's).

A signed webhook posted to node A is sealed and its media fetched by whichever worker takes the
task; an export requested through node A's API is built by a worker and downloaded from node B
(and A: whichever worker built it, one of the two web nodes is on another machine);
`verify_archive` on node B passes; and no node wrote anything under MEDIA_ROOT or EXPORT_ROOT.
"""

import email
import hashlib
import io
import shutil
import threading
import zipfile
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group, User

from access import roles
from archive import signing
from clientwindow.tokens import new_token
from messaging import simulator
from messaging.models import Attachment, Channel, Message
from tests.deployment.conftest import APP_SECRET, Node, wait_until
from tests.messaging.conftest import fixture_bytes
from tests.messaging.test_media import PHOTO, TOKEN, Graph
from tests.s3 import make_bucket, s3_client, store_url

IMAGE_WEBHOOK = fixture_bytes("message-image__netflie-php.json")  # media id IMAGE_ID
SETTLE = 120.0  # seconds for sealing, the media fetch and the export, on a busy 2-core host


@pytest.fixture
def committed_world(committed: None) -> Iterator[None]:
    """Committed rows (the nodes are other processes), every table emptied afterwards as the
    browser tests empty theirs: users, tokens and exports too, not only the archive."""
    try:
        yield
    finally:
        from tests.e2e.conftest import wipe_database

        wipe_database()


@pytest.fixture
def graph() -> Iterator[str]:
    Graph.files, Graph.plan, Graph.requests = {"IMAGE_ID": PHOTO}, [], []
    Graph.sha256 = Graph.download_url = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), Graph)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v25.0"
    server.shutdown()


def start_nodes(
    make_node: Any, s3: str, buckets: tuple[str, str], graph_url: str, tmp_path: Path
) -> tuple[Node, Node]:
    records, exports = buckets
    shared = {
        "STORAGE_URL": store_url(s3, records),
        "EXPORT_STORAGE_URL": store_url(s3, exports, "exports"),
        "WHATSAPP_GRAPH_URL": graph_url,
    }
    key = tmp_path / "ledger-signing-key.pem"  # copied to each worker host, as an operator does
    signing.create_private_key(key)
    nodes = make_node("a", **shared), make_node("b", **shared)
    for node in nodes:
        (node.home / "var").mkdir()
        shutil.copy(key, node.home / "var" / "ledger-signing-key.pem")
        node.manage("qcluster")
        node.manage("run_sequencer")
    for node in nodes:
        node.port = node.gunicorn()
    return nodes


def objects(s3: str, bucket: str) -> dict[str, bytes]:
    client = s3_client(s3)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def legal_token() -> str:
    user = User.objects.create_user("two-node-legal")
    user.groups.set(Group.objects.filter(name=roles.LEGAL))
    return new_token(user, "two nodes", 1)[1]


def attachment_in_zip(archive: bytes) -> bytes:
    """The image attached to the one .eml in an EML export."""
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
        (name,) = [n for n in bundle.namelist() if n.endswith(".eml")]
        message = email.message_from_bytes(bundle.read(name))
    (part,) = [p for p in message.walk() if p.get_content_maintype() == "image"]
    return part.get_payload(decode=True)


def test_it_serves_one_archive_from_two_nodes_that_share_no_disk(
    committed_world, no_schedules_due, s3_server, graph, make_node, tmp_path
):
    Channel.objects.create(phone_number_id="PHONE_NUMBER_ID", name="Desk", access_token=TOKEN)
    records, exports = make_bucket(s3_server, lock=True), make_bucket(s3_server, lock=False)
    a, b = start_nodes(make_node, s3_server, (records, exports), graph, tmp_path)

    webhook = f"http://127.0.0.1:{a.port}/webhooks/whatsapp/"
    assert simulator.post(webhook, IMAGE_WEBHOOK, APP_SECRET) == 200
    stored = wait_until(
        lambda: Attachment.objects.filter(outcome="stored").first(), SETTLE, "the media fetch"
    )
    assert objects(s3_server, records)[stored.file.storage_name] == PHOTO

    headers = {"Authorization": f"Token {legal_token()}"}
    scope = {"kind": "conversation", "conversation": Message.objects.get().conversation_id}
    with httpx.Client(headers=headers, timeout=30, trust_env=False) as api:
        created = api.post(
            f"http://127.0.0.1:{a.port}/api/v1/exports/", json={"format": "eml", "scope": scope}
        )
        assert created.status_code == 201, created.text
        status_url = f"http://127.0.0.1:{b.port}/api/v1/exports/{created.json()['id']}/"
        done = wait_until(
            lambda: (s := api.get(status_url).json())["state"] in ("done", "failed") and s,
            SETTLE,
            "the export",
        )
        assert done["state"] == "done", done["error"]
        download = api.get(f"http://127.0.0.1:{b.port}{done['download_url']}")
        again = api.get(f"http://127.0.0.1:{a.port}{done['download_url']}")
    assert download.status_code == again.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == done["file_sha256"]
    assert again.content == download.content  # one of the two nodes is not the builder's
    assert list(objects(s3_server, exports).values()) == [download.content]
    assert attachment_in_zip(download.content) == PHOTO

    verified = b.run("verify_archive", "--no-record")
    assert verified.returncode == 0, verified.stderr
    for node in (a, b):
        for local in node.local_dirs:
            assert not local.exists() or not any(local.iterdir()), f"{local} was written"
