"""The schema and its reader (api/reference.py): for users with a role, under the portal's CSP."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.api.conftest import api

pytestmark = pytest.mark.django_db


def test_it_serves_the_schema_to_a_role_with_a_token(reviewer: User) -> None:
    response = api(reviewer).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.1")
    assert "/api/v1/exports/" in schema["paths"]


def test_it_refuses_the_schema_to_an_account_without_a_role(outsider: User) -> None:
    response = api(outsider).get("/api/schema/")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_it_refuses_the_schema_without_credentials(client: Client) -> None:
    assert client.get("/api/schema/").status_code == 401


def test_a_browser_without_a_session_is_sent_to_the_login_page(client: Client) -> None:
    response = client.get("/api/docs/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/api/docs/"


def test_an_account_without_a_role_gets_the_no_role_page(client: Client, outsider: User) -> None:
    client.force_login(outsider)

    response = client.get("/api/docs/")

    assert response.status_code == 403
    assert b"No role assigned" in response.content


def test_the_reader_uses_our_own_files_and_no_inline_script(client: Client, auditor: Any) -> None:
    client.force_login(auditor)

    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "/static/api/reference.js" in page
    assert 'data-schema-url="/api/schema/"' in page
    assert "<script>" not in page and "<style" not in page and "https://" not in page
    # directives in any order (the header's order is not fixed)
    policy = {d.strip() for d in response["Content-Security-Policy"].split(";")}
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "img-src 'self' data:" in policy  # the one addition, on this page only
    assert "data:" not in client.get("/").get("Content-Security-Policy", "")
