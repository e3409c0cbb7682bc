"""An auditor in a real browser: export a transcript, watch it finish, download the file; the
access log and the ledger show both the request and the download."""

from pathlib import Path
from typing import Any

import pytest
from django_q.conf import Conf

from archive.models import LedgerEntry
from exports.models import Export
from review.models import AccessEvent
from tests.e2e.conftest import login, screenshot
from tests.e2e.test_review_flow import build_archive


@pytest.fixture
def jobs_inline(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> None:
    """django-q2 runs the queued export in the request thread: the worker's part, in-process."""
    monkeypatch.setattr(Conf, "SYNC", True)
    settings.EXPORT_ROOT = tmp_path / "exports"


def test_it_takes_an_auditor_from_transcript_to_a_downloaded_export(
    live_server: Any, auditor: Any, page: Any, jobs_inline: None
) -> None:
    build_archive()
    login(page, live_server, auditor)
    page.click("nav.sections >> text=Conversations")
    page.click("table.list tbody tr >> nth=0 >> a")
    page.locator("details.exportform summary").click()
    page.select_option("#export-format", "csv")
    page.click("details.exportform button[type=submit]")
    page.wait_for_selector("#progress h2:has-text('Done')")
    screenshot(page, "export")

    with page.expect_download() as download:
        page.click("#progress a:has-text('Download')")
    content = Path(download.value.path()).read_bytes()
    export = Export.objects.get()
    assert export.state == Export.State.DONE and export.message_count
    assert export.file_sha256 and len(content) == export.file_size
    actions = set(AccessEvent.objects.values_list("action", flat=True))
    assert {"request_export", "download_export"} <= actions
    kinds = set(LedgerEntry.objects.values_list("kind", flat=True))
    assert {"export.requested", "export.completed", "export.downloaded"} <= kinds

    page.click("nav.sections >> text=Exports")
    page.wait_for_selector("table.list td:has-text('Done')")
    screenshot(page, "exports")
