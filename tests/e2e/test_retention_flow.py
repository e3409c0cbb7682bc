"""Legal puts a client's conversations on hold in a real browser and finds the hold listed with
its message count; an administrator previews what a disposition would remove."""

from typing import Any

from messaging import simulator
from retention import holds
from retention.models import LegalHold
from tests.e2e.conftest import VIEWPORT, login, screenshot
from tests.e2e.test_review_flow import build_archive


def test_it_takes_legal_from_a_new_hold_to_the_list_and_an_admin_to_a_preview(
    live_server: Any, legal: Any, admin_user: Any, page: Any, browser: Any
) -> None:
    build_archive()
    login(page, live_server, legal)
    page.click("nav.sections >> text=Legal holds")
    page.fill("#id_matter", "Hart v Firm")
    page.fill("#id_matter_number", "2026-017")
    page.fill("#id_reason", "Complaint received; litigation reasonably anticipated.")
    page.fill("#id_custodians", "Amelia Hart\nHer relationship manager")
    page.fill("#id_participants", "+44 7700 900123")
    screenshot(page, "hold-form")
    page.click("#hold-form button[type=submit]")
    page.wait_for_selector(".notice:has-text('created and sealed')")
    hold = LegalHold.objects.get()
    assert hold.scope == {"participants": [simulator.DEMO_CLIENTS[0][0]]}
    held = holds.message_counts([hold])[hold.pk]
    assert held > 0 and page.inner_text("#messages-held") == str(held)
    screenshot(page, "hold")

    page.click("text=All legal holds")
    row = page.locator("#holds tbody tr", has_text="Hart v Firm")
    assert row.locator("td.num").inner_text() == str(held)
    assert "active" in row.inner_text()
    screenshot(page, "holds")

    admin = browser.new_context(viewport=VIEWPORT).new_page()
    login(admin, live_server, admin_user)
    admin.click("nav.sections >> text=Retention")
    admin.click("#preview-button")
    admin.wait_for_selector("#preview")
    assert "0 records are past retention and under no hold" in admin.inner_text("#preview")
    assert admin.inner_text("#held-count") == "0"
    screenshot(admin, "retention-preview")
    admin.context.close()
