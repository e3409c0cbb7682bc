"""Reply emails from providers' inbound webhooks (django-anymail; bridge/webhooks.py and
bridge/urls.py): kept and sent like one from the gateway, only with the right secret."""

import base64
import json
from typing import Any

import pytest
from django.urls import reverse

from bridge import inbound
from bridge.models import InboundEmail, Outbound
from tests.bridge.reply_emails import (
    PDF,
    RM,
    SUBJECT,
    media_upload,
    paths,
    reply_email,
)

pytestmark = pytest.mark.usefixtures("only_this_tests_emails")


# --- provider webhooks (django-anymail) ----------------------------------------------------


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def sendgrid_post(client: Any, raw: bytes, address: str, auth: str | None) -> Any:
    headers = {"HTTP_AUTHORIZATION": basic(auth)} if auth else {}
    return client.post(
        reverse("bridge:sendgrid_inbound_webhook"),
        {
            "email": raw.decode(),
            "envelope": json.dumps({"to": [address], "from": RM}),
            "charsets": json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8"}),
        },
        **headers,
    )


def postmark_post(client: Any, raw: bytes, address: str, auth: str | None = "user:pass") -> Any:
    headers = {"HTTP_AUTHORIZATION": basic(auth)} if auth else {}
    body = {
        "FromFull": {"Email": RM, "Name": "Robert Miller"},
        "OriginalRecipient": address,
        "Headers": [{"Name": "Return-Path", "Value": f"<{RM}>"}],
        "RawEmail": raw.decode(),
        "MessageID": "22c74902-a0c1-4511-804f-341342852c90",
    }
    return client.post(
        reverse("bridge:postmark_inbound_webhook"),
        json.dumps(body),
        content_type="application/json",
        **headers,
    )


@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
def test_a_sendgrid_inbound_parse_post_is_kept_and_sent(
    client, conversation, address, meta, settings
) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    raw = reply_email(address, "Sold at 101.\n\nOn Mon, Jane wrote:\n> Please sell\n")
    assert reverse("bridge:sendgrid_inbound_webhook") == "/email/inbound/sendgrid/inbound/"
    response = sendgrid_post(client, raw, address, "user:pass")
    assert response.status_code == 200
    stored = InboundEmail.objects.get(via="webhook")
    assert stored.state == "pending"
    assert stored.envelope_to == [address]
    assert stored.envelope_from == RM
    assert stored.message_id == str(inbound.parse(raw)["Message-ID"])
    assert inbound.parse(bytes(stored.raw))["Subject"] == SUBJECT
    assert inbound.process_pending() == 1
    stored.refresh_from_db()
    assert stored.state == "sent", stored.reason
    assert meta.sends()[0]["text"]["body"] == "Sold at 101."
    assert Outbound.objects.get().email == stored


def test_a_postmark_inbound_post_is_kept_and_sent(
    client, conversation, address, meta, settings
) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    raw = reply_email(address, None, files=((PDF, "application/pdf", "statement.pdf"),))
    response = postmark_post(client, raw, address)
    assert response.status_code == 200
    stored = InboundEmail.objects.get(via="webhook")
    assert stored.envelope_to == [address]
    inbound.process_pending()
    stored.refresh_from_db()
    assert stored.state == "sent", stored.reason
    assert paths(meta) == ["media", "messages"]
    assert media_upload(meta.requests[0])["file"] == PDF


@pytest.mark.parametrize("secret", ["", None])
def test_the_webhooks_do_not_exist_without_a_secret(
    client, conversation, address, meta, settings, secret
) -> None:
    settings.ANYMAIL = {} if secret is None else {"WEBHOOK_SECRET": secret}
    raw = reply_email(address)
    assert postmark_post(client, raw, address).status_code == 404
    assert postmark_post(client, raw, address, auth=None).status_code == 404
    assert not InboundEmail.objects.filter(via="webhook").exists()


@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
@pytest.mark.parametrize("auth", [None, "user:wrong", "other:pass"])
def test_the_webhooks_refuse_wrong_credentials(
    client, conversation, address, meta, settings, auth
) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    raw = reply_email(address)
    assert sendgrid_post(client, raw, address, auth).status_code in (400, 401, 403)
    assert postmark_post(client, raw, address, auth).status_code in (400, 401, 403)
    assert not InboundEmail.objects.filter(via="webhook").exists()
    assert inbound.process_pending() == 0
    assert meta.requests == []


def test_a_webhook_reply_with_a_2_mb_attachment_is_accepted(
    client, conversation, address, meta, settings
) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    big = PDF + bytes(2 * 1024 * 1024)
    assert len(big) < settings.MAIL_MAX_BYTES
    raw = reply_email(address, "Statement attached.", files=((big, "application/pdf", "s.pdf"),))
    response = postmark_post(client, raw, address)
    assert response.status_code == 200


def test_a_webhook_reply_larger_than_mail_max_bytes_is_not_sent(
    client, conversation, address, meta, settings
) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    settings.MAIL_MAX_BYTES = 4096
    raw = reply_email(address, "Attached.", files=((PDF * 4, "application/pdf", "s.pdf"),))
    assert len(raw) > settings.MAIL_MAX_BYTES
    postmark_post(client, raw, address)
    inbound.process_pending()
    assert meta.requests == []
