"""Those who may see legal holds can narrow a search to what a hold covers."""

from typing import Any

from django.urls import reverse

from messaging.models import Message
from retention import holds
from retention.holds import HoldScope
from review.search import SearchForm, filter_messages
from tests.review.conftest import World, world

__all__ = ["world"]


def test_the_hold_filter_keeps_exactly_the_held_messages(world: World, legal: Any) -> None:
    hold = holds.create(
        legal,
        matter="Smith v Bank",
        reason="Litigation notice of 2026-09-01",
        scope=HoldScope.build(conversations=[world.hostile.pk]),
    )
    form = SearchForm({"hold": str(hold.pk)})
    assert form.is_valid(), form.errors
    found = set(filter_messages(Message.objects.all(), form.cleaned_data))
    assert found and {m.conversation_id for m in found} == {world.hostile.pk}


def test_the_search_page_offers_and_applies_the_filter(
    client: Any, world: World, legal: Any
) -> None:
    hold = holds.create(
        legal,
        matter="FCA inquiry 42",
        reason="Regulator request",
        scope=HoldScope.build(conversations=[world.amelia.pk]),
    )
    client.force_login(legal)  # reviewers may not see holds (tests/review/test_search.py)
    page = client.get(reverse("review:search"), {"hold": hold.pk})
    assert page.status_code == 200
    html = page.content.decode()
    assert "FCA inquiry 42" in html
    assert f"conversations/{world.hostile.pk}/" not in html
    assert client.get(reverse("review:search"), {"hold": "999999"}).status_code == 400
