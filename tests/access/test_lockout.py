"""Lockout after failed sign-ins (access/lockout.py): per (name, address) and per address,
never per name alone; a success clears the pair; the cool-off ends it; administrators see it."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.shortcuts import resolve_url
from django.test import Client
from django.utils import timezone

from review.models import AccessEvent

PASSWORD = "correct horse battery staple"
pytestmark = pytest.mark.django_db


def sign_in(name: str, password: str, address: str = "192.0.2.1") -> int:
    data = {"login": name, "username": name, "password": password}
    client = Client(REMOTE_ADDR=address)
    return client.post(resolve_url(settings.LOGIN_URL), data).status_code


def fail(times: int, name: str, address: str = "192.0.2.1") -> list[int]:
    return [sign_in(name, "wrong", address) for _ in range(times)]


def test_it_locks_a_name_at_an_address_after_the_limit(reviewer) -> None:
    statuses = fail(settings.LOGIN_FAILURE_LIMIT, reviewer.username)
    assert statuses[-1] == 429
    assert sign_in(reviewer.username, PASSWORD) == 429  # the right password too, for now
    event = AccessEvent.objects.filter(action=AccessEvent.Action.LOCKED_OUT).first()
    assert (event.user, event.username, event.address) == (None, reviewer.username, "192.0.2.1")


def test_it_says_when_to_try_again() -> None:
    fail(settings.LOGIN_FAILURE_LIMIT - 1, "nobody")
    response = Client(REMOTE_ADDR="192.0.2.1").post(
        resolve_url(settings.LOGIN_URL), {"login": "nobody", "username": "nobody", "password": "x"}
    )
    assert response.status_code == 429
    assert f"paused for {settings.LOGIN_COOLOFF_MINUTES} minutes" in response.text


def test_it_does_not_lock_the_name_out_from_elsewhere(reviewer) -> None:
    fail(settings.LOGIN_FAILURE_LIMIT, reviewer.username, "192.0.2.1")
    assert sign_in(reviewer.username, PASSWORD, "198.51.100.7") == 302


def test_it_locks_an_address_that_tries_many_names(settings) -> None:
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 4
    for name in ("ann", "bob", "cy"):
        fail(1, name)
    assert fail(1, "dee") == [429]


def test_it_forgets_a_pairs_failures_after_a_success(reviewer) -> None:
    fail(settings.LOGIN_FAILURE_LIMIT - 1, reviewer.username)
    assert sign_in(reviewer.username, PASSWORD) == 302
    assert fail(settings.LOGIN_FAILURE_LIMIT - 1, reviewer.username)[-1] != 429


def test_it_lets_the_name_in_again_after_the_cool_off(reviewer) -> None:
    fail(settings.LOGIN_FAILURE_LIMIT, reviewer.username)
    later = timezone.now() + timedelta(minutes=settings.LOGIN_COOLOFF_MINUTES + 1)
    with time_machine.travel(later):
        cache.clear()
        assert sign_in(reviewer.username, PASSWORD) == 302


def test_it_shows_lockouts_to_administrators_only(admin_user, reviewer) -> None:
    fail(settings.LOGIN_FAILURE_LIMIT, "someone")
    client = Client()
    client.force_login(reviewer)
    assert client.get("/admin/axes/accessattempt/").status_code == 302


def test_failures_from_many_addresses_never_keep_the_name_out(reviewer) -> None:
    """More failures against one name than allauth's per-name limit, spread over addresses each
    below their own limits: the person still signs in from their own address."""
    for n in range(6):
        fail(settings.LOGIN_FAILURE_LIMIT - 1, reviewer.username, f"203.0.113.{n + 1}")
    assert sign_in(reviewer.username, PASSWORD, "198.51.100.7") == 302
