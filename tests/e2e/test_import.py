"""A legal user in a real browser imports a phone's "Export chat" zip: upload it, see the preview,
map its authors, import it, find one of its messages by search and open it in the transcript,
marked as imported from a phone export with its custodian."""

from pathlib import Path
from typing import Any

import pytest
from django_q.conf import Conf

from archive.models import LedgerEntry
from imports.models import ImportJob
from messaging.models import Channel, Message
from review.models import AccessEvent
from tests.e2e.conftest import login, screenshot

EXPORT = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "chat-exports"
    / "whatsapp-chat-parser-website__example.zip"
)


@pytest.fixture
def jobs_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-q2 runs the queued analysis and import in the request thread: the worker's part,
    in-process."""
    monkeypatch.setattr(Conf, "SYNC", True)


def test_it_takes_legal_from_an_uploaded_zip_to_the_imported_transcript(
    live_server: Any, legal: Any, page: Any, jobs_inline: None
) -> None:
    Channel.objects.create(name="Trading desk", phone_number_id="1001", display_number="+44 20")
    login(page, live_server, legal)
    page.click("nav.sections >> text=Imports")
    page.click("text=Import a chat export")
    page.fill("#id_custodian", "Loris")
    page.select_option("#id_time_zone", "Europe/Zurich")
    page.set_input_files("#id_file", str(EXPORT))
    page.click("form.stacked button[type=submit]")

    page.wait_for_selector("#authors")  # the preview (the analysis ran at the upload's commit)
    preview = page.inner_text("main")
    assert "iOS · [dd.mm.yy, HH:MM:SS]" in preview and "day/month/year" in preview
    assert "Loris created group" in preview  # among the first messages
    authors = page.locator("#authors tbody tr")
    assert authors.count() == 3
    loris = authors.filter(has_text="Loris")
    assert loris.locator("select").input_value() == "custodian"  # named as the custodian
    emily = authors.filter(has_text="Emily")
    emily.locator("select").select_option("number")
    emily.locator("input[name^=number_]").fill("+44 7700 900456")
    authors.filter(has_text="John").locator("select").select_option("unknown")
    screenshot(page, "import-preview")
    page.click("#confirm button[type=submit]")

    page.wait_for_selector("#report-title")  # the import ran at the confirmation's commit
    job = ImportJob.objects.get()
    assert job.state == ImportJob.State.DONE and job.counts["created"] > 30
    assert page.locator(".notice").first.inner_text().startswith("The import is sealed")
    screenshot(page, "import-report")

    page.click("nav.sections >> text=Search")
    page.fill("input[name=q]", "mysterious")
    page.click(".qline button[type=submit]")
    page.wait_for_selector("ol.hits li")
    assert "imported from a phone export" in page.inner_text("ol.hits")
    page.click("ol.hits li a >> nth=0")
    target = page.locator("li.msg.target")
    target.wait_for()
    shown = target.inner_text()
    assert "mysterious" in shown and "imported from a phone export" in shown
    assert "custodian Loris" in shown
    screenshot(page, "import-transcript")

    message = Message.objects.get(text__contains="mysterious")
    assert message.source == "phone_export"
    kinds = set(LedgerEntry.objects.values_list("kind", flat=True))
    assert {"chat.export", "import.started", "message.imported", "import.finished"} <= kinds
    assert AccessEvent.objects.filter(action="upload_chat_export", user=legal).exists()
