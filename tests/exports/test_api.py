"""/api/v1/exports/: token or session auth, the same permissions and records as the portal."""

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from archive.models import LedgerEntry
from clientwindow.tokens import new_token
from exports import formats, jobs
from exports.models import Export
from review.models import AccessEvent
from tests.exports.conftest import RICH_NUMBER, Rich
from tests.exports.test_jobs import Recorder

URL = "/api/v1/exports/"


@pytest.fixture(autouse=True)
def setup(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.EXPORT_ROOT = tmp_path / "exports"
    monkeypatch.setattr(formats, "writer", lambda fmt: Recorder())


def api(user: Any | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {new_token(user, 'test', 1)[1]}")
    return client


def test_it_requests_follows_and_downloads_an_export(rich: Rich, legal: Any) -> None:
    client = api(legal)
    scope = {"kind": "participant", "participant": f"+{RICH_NUMBER}"}
    created = client.post(URL, {"format": "eml", "scope": scope}, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["state"] == "pending" and created.json()["download_url"] is None
    jobs.run_export(pk)
    status = client.get(f"{URL}{pk}/").json()
    assert status["state"] == "done" and status["percent"] == 100
    download = client.get(status["download_url"])
    assert download.status_code == 200
    assert b"".join(download.streaming_content)[:2] == b"PK"
    assert AccessEvent.objects.filter(action=AccessEvent.Action.DOWNLOAD_EXPORT).exists()
    assert LedgerEntry.objects.filter(kind="export.downloaded").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"format": "pdf", "scope": {"kind": "conversation", "conversation": 999999}}, "scope"),
        ({"format": "pdf", "scope": {"kind": "participant", "participant": "1"}}, "scope"),
        ({"format": "pdf", "scope": {"kind": "elsewhere"}}, "scope"),
        (
            {"format": "docx", "scope": {"kind": "participant", "participant": RICH_NUMBER}},
            "format",
        ),
        ({"scope": {"kind": "search", "query": {"date_from": "yesterday"}}}, "format"),
    ],
)
def test_it_says_what_is_wrong_with_a_request(
    rich: Rich, auditor: Any, body: dict[str, Any], field: str
) -> None:
    response = api(auditor).post(URL, body, format="json")
    assert response.status_code == 400
    problem = response.json()
    assert problem["type"] == "urn:clientwindow:problem:invalid" and problem["status"] == 400
    assert field in problem["errors"] and field in problem["detail"]
    assert response["Content-Type"] == "application/problem+json"
    assert not Export.objects.exists()


def test_it_refuses_the_anonymous_and_the_roleless(rich: Rich, outsider: Any) -> None:
    assert api().get(URL).status_code == 401
    assert api(outsider).get(URL).status_code == 403
    assert api(outsider).post(URL, {}, format="json").status_code == 403


def test_it_lists_only_ones_own_exports(rich: Rich, auditor: Any, legal: Any) -> None:
    scope = {"kind": "conversation", "conversation": rich.conversation.pk}
    pk = api(auditor).post(URL, {"format": "csv", "scope": scope}, format="json").json()["id"]
    assert [e["id"] for e in api(auditor).get(URL).json()] == [pk]
    assert api(legal).get(URL).json() == []
    assert api(legal).get(f"{URL}{pk}/").status_code == 404


def test_it_serves_its_schema_to_users_only(rich: Rich, auditor: Any) -> None:
    assert api().get("/api/schema/").status_code == 401
    schema = api(auditor).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/exports/" in schema.content.decode()


def test_it_still_accepts_drfs_token_keyword(rich: Rich, legal: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {new_token(legal, 'old client', 1)[1]}")
    assert client.get(URL).status_code == 200
