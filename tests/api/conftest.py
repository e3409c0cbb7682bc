"""What the API tests share: a client holding a user's token, and the review tests' world."""

from typing import Any

from rest_framework.test import APIClient

from clientwindow.tokens import new_token
from tests.review.conftest import World, world

__all__ = ["World", "api", "world"]


def api(user: Any | None = None) -> APIClient:
    """A client that authenticates as `user` with a fresh API token (none: anonymous)."""
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {new_token(user, 'test', 1)[1]}")
    return client
