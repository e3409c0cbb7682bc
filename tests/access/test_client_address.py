"""The client's address (access/lockout.py `client_address`): REMOTE_ADDR, or behind
TRUSTED_PROXY_COUNT proxies the address the nearest of them saw; and every place that records an
address (lockout, the access log, sign-in failures, refused API tokens) records that one."""

from typing import Any

import pytest
from django.shortcuts import resolve_url
from django.test import Client, RequestFactory

from access.lockout import client_address
from review.models import AccessEvent

PROXY = "10.0.0.5"
CLIENT = "198.51.100.7"


def request(forwarded: str | None = None) -> Any:
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=PROXY, **headers)


@pytest.mark.parametrize(
    ("count", "forwarded", "address"),
    [
        (0, f"203.0.113.9, {CLIENT}", PROXY),  # no proxy trusted: the header is the client's word
        (1, CLIENT, CLIENT),
        (1, f"203.0.113.9, {CLIENT}", CLIENT),  # what the client wrote left of it is ignored
        (2, f"203.0.113.9, {CLIENT}, 10.0.0.4", CLIENT),
        (2, CLIENT, PROXY),  # fewer entries than trusted proxies: not believed
        (1, None, PROXY),
    ],
)
def test_the_client_address(settings: Any, count: int, forwarded: str | None, address: str) -> None:
    settings.TRUSTED_PROXY_COUNT = count
    assert client_address(request(forwarded)) == address


@pytest.mark.django_db
def test_the_access_log_records_the_client_behind_a_trusted_proxy(settings: Any) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    client = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"203.0.113.9, {CLIENT}")
    client.post(resolve_url(settings.LOGIN_URL), {"login": "nobody", "password": "wrong"})
    client.get("/api/v1/exports/", HTTP_AUTHORIZATION="Bearer not-a-token")
    failed = AccessEvent.objects.get(action=AccessEvent.Action.LOGIN_FAILED)
    refused = AccessEvent.objects.get(action=AccessEvent.Action.TOKEN_REFUSED)
    assert (failed.address, refused.address) == (CLIENT, CLIENT)
