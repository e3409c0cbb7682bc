"""The portal's export pages: who may request, see, cancel, retry and download, and what is
recorded when they do."""

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from archive.models import LedgerEntry
from exports import formats, jobs
from exports.models import Export
from exports.scope import Scope
from review.models import AccessEvent
from tests.exports.conftest import Rich
from tests.exports.test_jobs import Recorder


@pytest.fixture(autouse=True)
def export_root(settings: Any, tmp_path: Path) -> None:
    settings.EXPORT_ROOT = tmp_path / "exports"


@pytest.fixture(autouse=True)
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(formats, "writer", lambda fmt: recorder)
    return recorder


@pytest.fixture
def done(rich: Rich, auditor: Any) -> Export:
    export = jobs.request_export(auditor, Scope.for_conversation(rich.conversation.pk), "eml")
    jobs.run_export(str(export.pk))
    export.refresh_from_db()
    return export


def request(client: Any, user: Any, **data: Any) -> Any:
    client.force_login(user)
    return client.post(reverse("exports:create"), data)


def test_it_lets_an_auditor_export_a_conversation(client: Any, rich: Rich, auditor: Any) -> None:
    response = request(
        client, auditor, scope="conversation", conversation=rich.conversation.pk, format="pdf"
    )
    export = Export.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("exports:detail", args=[export.pk])
    assert export.requested_by == auditor and export.state == Export.State.PENDING
    event = AccessEvent.objects.get(action=AccessEvent.Action.REQUEST_EXPORT)
    assert event.object_id == str(export.pk)


def test_it_exports_the_current_search(client: Any, rich: Rich, legal: Any) -> None:
    request(client, legal, scope="search", query="q=statement&direction=out", format="csv")
    assert Export.objects.get().scope == {
        "kind": "search",
        "query": {"direction": "out", "q": "statement"},
    }


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"scope": "conversation", "conversation": "999999", "format": "pdf"}, "no such"),
        ({"scope": "participant", "participant": "12", "format": "pdf"}, "full WhatsApp"),
        ({"scope": "search", "query": "date_from=2026-02-02&date_to=2026-01-01"}, "format"),
        ({"scope": "participant", "participant": "+971501234567", "format": "docx"}, "docx"),
    ],
)
def test_it_answers_a_bad_request_with_400_and_why(
    client: Any, rich: Rich, auditor: Any, data: dict[str, str], problem: str
) -> None:
    response = request(client, auditor, **data)
    assert response.status_code == 400
    assert problem in response.content.decode()
    assert not Export.objects.exists()


def test_it_refuses_reviewers_unless_an_administrator_allows_them(
    client: Any, rich: Rich, reviewer: Any
) -> None:
    data = {"scope": "participant", "participant": "+971501234567", "format": "csv"}
    assert request(client, reviewer, **data).status_code == 403
    reviewer.user_permissions.add(Permission.objects.get(codename="create_export"))
    assert request(client, reviewer, **data).status_code == 302


@pytest.mark.parametrize("name", ["list", "detail", "download"])
def test_it_shows_nothing_to_outsiders(
    client: Any, done: Export, outsider: Any, reviewer: Any, name: str
) -> None:
    url = reverse(f"exports:{name}", args=[] if name == "list" else [done.pk])
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(outsider)
    assert client.get(url).status_code == 403
    client.force_login(reviewer)
    assert client.get(url).status_code == 403


def test_it_hides_one_users_export_from_another(client: Any, done: Export, legal: Any) -> None:
    client.force_login(legal)
    assert client.get(reverse("exports:detail", args=[done.pk])).status_code == 404
    assert client.get(reverse("exports:download", args=[done.pk])).status_code == 404
    assert str(done.pk) not in client.get(reverse("exports:list")).content.decode()


def test_it_shows_administrators_every_export(client: Any, done: Export, admin_user: Any) -> None:
    client.force_login(admin_user)
    assert client.get(reverse("exports:detail", args=[done.pk])).status_code == 200


def test_it_streams_the_download_and_seals_it(client: Any, done: Export, auditor: Any) -> None:
    client.force_login(auditor)
    response = client.get(reverse("exports:download", args=[done.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:2] == b"PK"
    assert "attachment" in response["Content-Disposition"]
    assert AccessEvent.objects.filter(action=AccessEvent.Action.DOWNLOAD_EXPORT).count() == 1
    assert LedgerEntry.objects.filter(kind="export.downloaded").count() == 1


def test_it_polls_progress_as_a_fragment(client: Any, done: Export, auditor: Any) -> None:
    client.force_login(auditor)
    url = reverse("exports:detail", args=[done.pk])
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<section id="progress"')
    assert "every 2s" not in fragment  # a finished export stops polling


def test_it_cancels_and_retries_from_the_page(client: Any, rich: Rich, auditor: Any) -> None:
    client.force_login(auditor)
    export = jobs.request_export(auditor, Scope.for_conversation(rich.conversation.pk), "eml")
    client.post(reverse("exports:cancel", args=[export.pk]))
    export.refresh_from_db()
    assert export.state == Export.State.CANCELLED
    client.post(reverse("exports:retry", args=[export.pk]))
    export.refresh_from_db()
    assert export.state == Export.State.PENDING


def test_it_offers_export_on_transcripts_and_searches(client: Any, rich: Rich, legal: Any) -> None:
    client.force_login(legal)
    transcript = client.get(reverse("review:conversation", args=[rich.conversation.pk]))
    assert reverse("exports:create") in transcript.content.decode()
    found = client.get(reverse("review:search"), {"q": "statement"})
    assert 'name="query" value="q=statement"' in found.content.decode()
