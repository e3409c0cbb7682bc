import pytest
from django.urls import reverse

from messaging.models import Delivery, RejectedWebhook
from tests.messaging.conftest import sign

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
