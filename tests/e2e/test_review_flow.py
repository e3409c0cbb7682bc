"""A reviewer's day in a real browser: search with a filter, open the hit in its transcript,
tag it, flag it; a colleague decides it (nobody decides their own flag); then an administrator
finds all of it in the access log."""

from typing import Any

from archive.models import LedgerEntry
from messaging import simulator
from messaging.models import Channel, Message
from review import search
from review.models import AccessEvent, Flag, ReviewDecision, Tag
from tests.e2e.conftest import VIEWPORT, login, screenshot
from tests.review.conftest import NOW, seal


def build_archive() -> None:
    Channel.objects.create(
        name=simulator.DEMO_CHANNEL["name"],
        phone_number_id=simulator.DEMO_CHANNEL["phone_number_id"],
    )
    seal(*simulator.demo_bodies(NOW))
    Tag.objects.create(name="Suitability", colour="#b3261e")


def test_it_takes_a_reviewer_from_search_to_a_sealed_decision(
    live_server: Any, reviewer: Any, admin_user: Any, make_user: Any, page: Any, browser: Any
) -> None:
    build_archive()
    login(page, live_server, reviewer)
    screenshot(page, "overview")

    page.click("nav.sections >> text=Search")
    page.fill("input[name=q]", "bond")
    page.select_option("select[name=direction]", "in")
    page.click(".qline button[type=submit]")
    page.wait_for_selector("ol.hits li")
    assert "messages" in page.inner_text("#hits-title")
    screenshot(page, "search")

    page.click("ol.hits li a >> nth=0")
    target = page.locator("li.msg.target")
    target.wait_for()
    assert "bond" in target.inner_text()
    screenshot(page, "transcript")

    target.locator("details.tagform summary").click()
    target.locator("details.tagform select").select_option(label="Suitability")
    target.locator("details.tagform button").click()
    page.wait_for_selector("li.msg.target .mtags .tag:has-text('Suitability')")

    target.locator("details.flagform summary").click()
    target.locator("textarea[name=note]").fill("client asks to move money by chat")
    target.locator("button:has-text('Raise flag')").click()
    page.wait_for_selector(".notice:has-text('raised for review')")
    flag = Flag.objects.get()
    assert flag.note == "client asks to move money by chat"

    colleague = browser.new_context(viewport=VIEWPORT).new_page()
    login(colleague, live_server, make_user("sam", "Reviewer"))
    colleague.goto(f"{live_server.url}/review/{flag.pk}/")
    colleague.check("input[name=outcome][value=not_compliant]")
    colleague.fill("textarea[name=reason]", "instructions must go through the order line")
    screenshot(colleague, "flag")
    colleague.click("button:has-text('Record decision')")
    colleague.wait_for_selector(".notice:has-text('recorded and sealed')")
    colleague.context.close()
    decision = ReviewDecision.objects.get()
    assert (decision.outcome, decision.decided_by.username) == ("not_compliant", "sam")
    assert LedgerEntry.objects.filter(kind="review.decision", seq=decision.entry_id).exists()

    page.click("nav.sections >> text=Review queue")
    page.select_option("select[name=state]", "not_compliant")
    page.click("form.filters button")
    page.wait_for_selector(f"a[href='/review/{flag.pk}/']")
    screenshot(page, "queue")

    admin = browser.new_context(viewport=VIEWPORT).new_page()
    login(admin, live_server, admin_user)
    admin.click("nav.sections >> text=Access log")
    log = admin.inner_text("table.list")
    assert "rey" in log and "searched" in log and "query “bond”" in log
    assert "viewed conversation" in log and "direction=in" in log
    screenshot(admin, "access-log")
    admin.context.close()
    assert AccessEvent.objects.filter(username="rey", action="search").count() == 1


def test_it_shows_the_conversation_list_and_opens_a_transcript(
    live_server: Any, reviewer: Any, page: Any
) -> None:
    build_archive()
    login(page, live_server, reviewer)
    page.click("nav.sections >> text=Conversations")
    page.wait_for_selector("table.list tbody tr")
    assert page.locator("table.list tbody tr").count() == 3
    screenshot(page, "conversations")
    page.click("table.list tbody tr >> nth=0 >> a")
    page.wait_for_selector("ol.transcript li.msg")
    assert page.locator("ol.transcript li.msg").count() == 4


def test_a_search_page_shows_its_hits_then_its_count(
    live_server: Any, reviewer: Any, page: Any, monkeypatch: Any
) -> None:
    """A count does not hold a page's hits back: the heading says "more than" what the page
    has, then fills in the count from a request of its own (htmx)."""
    build_archive()
    real = search._capped_count
    budgets: list[str] = []

    def counted(messages: Any, budget_ms: str, **kwargs: Any) -> int | None:
        budgets.append(budget_ms)
        return real(messages, budget_ms, **kwargs)

    monkeypatch.setattr(search, "_capped_count", counted)
    monkeypatch.setattr(search, "PAGE_SIZE", 1)
    login(page, live_server, reviewer)
    page.goto(f"{live_server.url}/search/?q=bond")
    page.wait_for_selector("ol.hits li")
    title = page.locator("#hits-title")
    title.filter(has_not_text="counting").wait_for()
    matching = Message.objects.filter(search=search.text_query("bond")).count()
    assert matching > 1
    assert title.inner_text() == f"{matching} messages"
    assert budgets == [search.COUNT_LATER_BUDGET_MS]
