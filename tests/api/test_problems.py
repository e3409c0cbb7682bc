"""Every API error is an RFC 9457 problem (api/problems.py), whatever raised it."""

from typing import Any

import pytest
from django.test import Client

from tests.api.conftest import api

pytestmark = pytest.mark.django_db


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"urn:clientwindow:problem:{code}"
    assert problem["status"] == status and problem["title"] and problem["detail"]
    return problem


@pytest.mark.parametrize("path", ["/api/", "/api/v1/", "/api/v1/nothing/", "/api/v2/exports/"])
def test_an_unknown_address_is_a_404_problem(client: Client, path: str) -> None:
    _problem(client.get(path), 404, "not_found")


def test_no_credentials_is_a_401_problem(client: Client) -> None:
    _problem(client.get("/api/v1/exports/"), 401, "not_authenticated")


def test_a_bad_token_is_a_401_problem_naming_why(client: Client) -> None:
    problem = _problem(
        client.get("/api/v1/exports/", HTTP_AUTHORIZATION="Bearer !!"),
        401,
        "authentication_failed",
    )
    assert "Malformed" in problem["detail"]


def test_a_method_the_operation_lacks_is_a_405_problem(legal: Any) -> None:
    _problem(api(legal).delete("/api/v1/exports/"), 405, "method_not_allowed")


def test_malformed_json_is_a_400_problem(legal: Any) -> None:
    response = api(legal).post("/api/v1/exports/", "{not json", content_type="application/json")
    _problem(response, 400, "parse_error")


def test_the_schema_gives_every_operation_its_problems(legal: Any) -> None:
    schema = api(legal).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["openapi"].startswith("3.1")
    assert schema["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
    ]
    for operations in schema["paths"].values():
        for operation in operations.values():
            assert "404" in operation["responses"] and "400" in operation["responses"]


@pytest.mark.parametrize("query", ["limit=1%00", "q=%00", "%00=1"])
def test_a_nul_in_the_query_is_a_400_problem(legal: Any, query: str) -> None:
    problem = _problem(api(legal).get(f"/api/v1/exports/?{query}"), 400, "parse_error")
    assert "NUL" in problem["detail"] or "null" in problem["detail"].lower()


def test_a_nul_outside_the_api_stays_a_plain_400(client: Client) -> None:
    response = client.get("/search/?q=%00")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("query", ["after=--5", "after=-", "limit=--1", "wait=--1", "wait=31"])
def test_a_malformed_page_parameter_is_a_400_problem_naming_it(reviewer: Any, query: str) -> None:
    name = query.split("=")[0]
    problem = _problem(api(reviewer).get(f"/api/v1/feed/?{query}"), 400, "invalid")
    assert name in problem["errors"]
