"""Replaying real webhook bodies through the signed endpoint."""

import json
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from messaging import simulator
from messaging.models import Channel

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "test-app-secret"


def sign(body: bytes, secret: str = SECRET) -> str:
    return simulator.sign(body, secret)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def phone_number_ids(body: bytes) -> set[str]:
    document = json.loads(body)
    return {
        str(change["value"].get("metadata", {}).get("phone_number_id", ""))
        for entry in document["entry"]
        for change in entry["changes"]
    }


@pytest.fixture(autouse=True)
def webhook_secrets(settings: Any) -> None:
    settings.WHATSAPP_APP_SECRET = SECRET
    settings.WHATSAPP_VERIFY_TOKEN = "test-verify-token"


@pytest.fixture
def post(client: Any) -> Any:
    def post_body(body: bytes, signature: str | None = None, **extra: Any) -> Any:
        headers = {"HTTP_X_HUB_SIGNATURE_256": sign(body) if signature is None else signature}
        return client.post(
            reverse("whatsapp_webhook"),
            body,
            content_type="application/json",
            **headers,
            **extra,
        )

    return post_body


@pytest.fixture
def channels_for(db: None) -> Any:
    def make(body: bytes) -> list[Channel]:
        return [
            Channel.objects.get_or_create(phone_number_id=pnid, defaults={"name": f"Desk {pnid}"})[
                0
            ]
            for pnid in sorted(phone_number_ids(body))
        ]

    return make
