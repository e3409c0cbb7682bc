import http.client
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.urls import reverse

from messaging.models import Delivery, RejectedWebhook
from tests.bridge.conftest import free_port
from tests.conftest import TEST_DB
from tests.messaging.conftest import SECRET, sign

pytestmark = pytest.mark.django_db
BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_it_answers_the_subscription_handshake_with_the_bare_challenge(client):
    response = client.get(
        reverse("whatsapp_webhook"),
        {"hub.mode": "subscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1158"},
    )
    assert (response.status_code, response.content) == (200, b"1158")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1"},
        {},
    ],
)
def test_it_refuses_any_other_handshake(client, query):
    assert client.get(reverse("whatsapp_webhook"), query).status_code == 403


def test_it_stores_a_signed_body_exactly_as_received(post):
    body = '{"entry": [], "text": "caf\\u00e9 \u00e9 @ \U0001f600"}'.encode()
    assert post(body).status_code == 200
    delivery = Delivery.objects.get()
    assert bytes(delivery.body) == body
    assert delivery.headers["HTTP_X_HUB_SIGNATURE_256"] == sign(body)


def test_it_stores_invalid_json_from_a_valid_signer(post):
    assert post(b"{not json").status_code == 200
    assert bytes(Delivery.objects.get().body) == b"{not json"


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("", "missing"),
        ("sha256=" + "0" * 64, "mismatch"),
        (sign(BODY, "another-secret"), "mismatch"),
        ("sha1=abc", "malformed"),
        (sign(BODY)[:-1], "malformed"),
        ("sha256=" + "é" * 64, "non_ascii"),
    ],
)
def test_it_refuses_a_bad_signature_and_stores_nothing(post, signature, reason, caplog):
    response = post(BODY, signature=signature)
    assert response.status_code == 401
    assert Delivery.objects.count() == 0
    assert RejectedWebhook.objects.get(reason=reason).count == 1
    assert "webhook refused" in caplog.text


def test_it_refuses_everything_without_an_app_secret(post, settings):
    settings.WHATSAPP_APP_SECRET = ""
    assert post(BODY).status_code == 401
    assert Delivery.objects.count() == 0


def test_it_counts_repeated_rejections(post):
    for _ in range(3):
        post(BODY, signature="sha256=" + "1" * 64)
    assert RejectedWebhook.objects.get(reason="mismatch").count == 3


def test_it_refuses_oversized_bodies_before_reading_them(post, settings):
    settings.WEBHOOK_MAX_BYTES = 100
    assert post(b"x" * 101).status_code == 413
    assert Delivery.objects.count() == 0


def test_it_accepts_a_body_of_three_megabytes(post):
    body = b'{"pad":"' + b"a" * (3 * 1024 * 1024) + b'"}'
    assert post(body).status_code == 200


def test_it_allows_only_get_and_post(client):
    assert client.put(reverse("whatsapp_webhook")).status_code == 405


def post_chunked(client, body, signature=None):
    """As servers present a chunked request: no Content-Length, the body on wsgi.input."""
    return client.generic(
        "POST",
        reverse("whatsapp_webhook"),
        headers={
            "Transfer-Encoding": "chunked",
            "X-Hub-Signature-256": sign(body) if signature is None else signature,
        },
        CONTENT_TYPE="application/json",
        **{"wsgi.input": io.BytesIO(body)},
    )


def test_a_signed_webhook_sent_chunked_is_read_and_stored(client):
    response = post_chunked(client, BODY)
    assert response.status_code == 200, response.content
    delivery = Delivery.objects.get()
    assert bytes(delivery.body) == BODY
    assert delivery.headers["HTTP_TRANSFER_ENCODING"] == "chunked"
    assert post_chunked(client, BODY, signature=sign(b"")).status_code == 401


def test_a_chunked_body_past_the_limit_is_refused_with_413(client, settings):
    settings.WEBHOOK_MAX_BYTES = 100
    response = post_chunked(client, b"x" * 101)
    assert response.status_code == 413
    assert not Delivery.objects.exists()
    assert RejectedWebhook.objects.get(reason="too_large").count == 1
    assert post_chunked(client, b"x" * 100).status_code == 200


@pytest.mark.skipif("DATABASE_URL" not in os.environ, reason="needs DATABASE_URL (make test)")
def test_a_signed_webhook_sent_chunked_to_gunicorn_is_stored(committed):
    port = free_port()
    parts = urlsplit(os.environ["DATABASE_URL"])
    env = os.environ | {
        "DATABASE_URL": urlunsplit(parts._replace(path=f"/{TEST_DB}")),
        "WHATSAPP_APP_SECRET": SECRET,
        "CLIENTWINDOW_LOCAL": "1",
        "CLIENTWINDOW_DEBUG": "0",
    }
    env.pop("DATABASE_OWNER_URL", None)
    command = [sys.executable, "-m", "gunicorn", "clientwindow.wsgi", "--bind", f"127.0.0.1:{port}"]
    root = Path(__file__).resolve().parents[2]
    server = subprocess.Popen(command, cwd=root, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                headers = {"X-Hub-Signature-256": sign(BODY), "Transfer-Encoding": "chunked"}
                pieces = iter([BODY[:10], BODY[10:]])
                connection.request(
                    "POST", "/webhooks/whatsapp/", pieces, headers, encode_chunked=True
                )
                response = connection.getresponse()
                break
            except ConnectionRefusedError:
                time.sleep(0.2)
            finally:
                connection.close()
        assert response.status == 200
        assert [bytes(d.body) for d in Delivery.objects.all()] == [BODY]
    finally:
        server.terminate()
        server.communicate(timeout=30)
