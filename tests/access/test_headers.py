"""Cache-Control: no-store on everything that may carry client content."""

from typing import Any

from django.urls import reverse
from rest_framework.test import APIClient

from clientwindow.tokens import new_token


def test_pages_and_api_responses_that_carry_client_content_are_not_stored(
    client: Any, reviewer: Any, legal: Any
) -> None:
    client.force_login(reviewer)
    for url in (reverse("home"), reverse("review:search") + "?q=fund", reverse("review:queue")):
        response = client.get(url)
        assert response.status_code == 200 and response["Cache-Control"] == "private, no-store"
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {new_token(legal, 'test', 1)[1]}")
    listed = api.get("/api/v1/exports/")
    assert listed.status_code == 200 and listed["Cache-Control"] == "private, no-store"
    assert APIClient().get("/api/v1/exports/")["Cache-Control"] == "private, no-store"


def test_it_leaves_anonymous_pages_and_static_files_alone(client: Any, reviewer: Any) -> None:
    assert not client.get("/favicon.ico").has_header("Cache-Control")  # anonymous
    client.force_login(reviewer)
    static = client.get("/static/favicon.svg")
    assert static.status_code == 200 and "no-store" not in static.get("Cache-Control", "")
