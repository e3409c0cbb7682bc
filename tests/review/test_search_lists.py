"""The search page's lists (its filters' channels and tags, the user's saved searches) read in
one statement (search.page_lists): the rows, fields and order of the querysets they replace."""

import re
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import prepared
from messaging.models import Channel
from review import saved_searches, search
from review.models import SavedSearch, Tag

# Names as a user may type them: quotes, backslashes, accents, emoji (no NUL: PostgreSQL's text
# refuses it; no surrogates: not UTF-8)
NAMES = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)


def shown(rows: list[Any], fields: tuple[str, ...]) -> list[tuple[Any, ...]]:
    return [(*(getattr(row, f) for f in fields), str(row)) for row in rows]


def orm_lists(user: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """What the search page read before page_lists: each field's queryset, and the user's own
    saved searches as access.saved_searches_for_user gives them."""
    form = search.SearchForm()
    return (
        list(form.fields["channel"].queryset),  # type: ignore[attr-defined]
        list(form.fields["tag"].queryset),  # type: ignore[attr-defined]
        list(SavedSearch.objects.filter(user_id=user.pk)),
    )


def assert_same(user: Any) -> None:
    lists = search.page_lists(user.pk)
    channels, tags, saved = orm_lists(user)
    assert shown(lists.channels, search.CHANNEL_SHOWN) == shown(channels, search.CHANNEL_SHOWN)
    assert shown(lists.tags, search.TAG_SHOWN) == shown(tags, search.TAG_SHOWN)
    assert shown(lists.saved, search.SAVED_SHOWN) == shown(saved, search.SAVED_SHOWN)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    channels=st.lists(st.tuples(NAMES.filter(str.strip), NAMES), max_size=4),
    tags=st.lists(NAMES.filter(str.strip), max_size=4, unique=True),
    saved=st.lists(st.tuples(NAMES.filter(str.strip), NAMES), max_size=4, unique_by=lambda s: s[0]),
)
def test_the_page_lists_are_the_querysets_they_replace(
    reviewer: Any,
    auditor: Any,
    channels: list[tuple[str, str]],
    tags: list[str],
    saved: list[tuple[str, str]],
) -> None:
    """Whatever the names, numbers and queries: the same rows, fields, labels and order as the
    ORM's querysets, and never another user's saved searches."""
    with transaction.atomic():
        for n, (name, number) in enumerate(channels):
            display = re.sub(r"\s", "", number)[:32]
            Channel.objects.create(name=name, display_number=display, phone_number_id=f"pn-{n}")
        for name in tags:
            Tag.objects.create(name=name[:60], description=name * 2)
        for name, query in saved:
            saved_searches.save(reviewer, name[:120], query)
        saved_searches.save(auditor, "someone else's", "q=theirs")
        assert_same(reviewer)
        assert_same(auditor)
        transaction.set_rollback(True)


def test_a_channel_in_the_list_holds_no_access_token(reviewer: Any) -> None:
    """Only the fields the page shows are read (its access token never is)."""
    Channel.objects.create(name="Desk", phone_number_id="100200300", access_token="secret")
    (channel,) = search.page_lists(reviewer.pk).channels
    assert channel.get_deferred_fields() >= {"access_token", "waba_id", "created_at"}
    assert "access_token" not in channel.__dict__


@pytest.mark.django_db
def test_the_search_page_reads_its_lists_in_one_statement(client: Any, reviewer: Any) -> None:
    """Channels, tags and saved searches: one statement, not one each; the page still offers
    each channel and tag and lists the saved searches, and a tag chosen from it filters."""
    Channel.objects.create(name="Desk", display_number="+44 20 7946 0000", phone_number_id="1")
    tag = Tag.objects.create(name="Bonds")
    saved_searches.save(reviewer, "My bonds", "q=bond")
    client.force_login(reviewer)
    with CaptureQueriesContext(connection) as captured:
        page = client.get(reverse("review:search"), {"q": "bond", "tag": tag.pk})
    html = page.content.decode()
    assert page.status_code == 200 and page.context["form"].cleaned_data["tag"] == tag
    assert "Desk (+44 20 7946 0000)</option>" in html and "Bonds</option>" in html
    assert '<a href="?q=bond">My bonds</a>' in html
    sent = [prepared.statement(q["sql"]) for q in captured.captured_queries]
    tables = ('"messaging_channel"', '"review_tag"', '"review_savedsearch"')
    assert not [sql for sql in sent if any(f"FROM {t}" in sql for t in tables)]
    assert len([sql for sql in sent if "FROM review_savedsearch " in sql]) == 1  # ours, unquoted
