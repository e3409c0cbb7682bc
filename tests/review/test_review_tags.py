from datetime import UTC, datetime
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, User
from django.template import engines
from django.template.defaulttags import CsrfTokenNode
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from access import roles
from access.roles import LEGAL, REVIEWER
from exports.forms import ExportForm
from imports.forms import UploadForm
from messaging.models import Channel
from retention.forms import HoldForm
from review import search
from review.models import SavedSearch, Tag
from review.templatetags.review_tags import (
    _INPUTS,
    conversation_url,
    pk_url,
    preview,
    search_filters,
    when,
    widget,
)


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_it_gives_a_conversation_the_address_reverse_gives(pk: int) -> None:
    assert conversation_url(pk) == reverse("review:conversation", args=[pk])


@given(st.text(), st.integers(min_value=1, max_value=200))
def test_it_previews_a_text_as_truncatechars_would(text: str, length: int) -> None:
    shown = preview(text, length)
    assert len(shown) <= length
    if len(text) <= length:
        assert shown == text
    else:
        assert shown == text[: length - 1] + "…"


@pytest.mark.parametrize("name", ["review:conversation", "review:media", "review:flag_message"])
@given(pk=st.integers(min_value=1, max_value=2**63 - 1))
def test_it_gives_an_address_with_an_id_as_reverse_does(name: str, pk: int) -> None:
    assert pk_url(name, pk) == reverse(name, args=[pk])


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),  # strftime writes year 999 as "999", the filter "0999"
        timezones=st.sampled_from([UTC, ZoneInfo("Asia/Kolkata")]),
    )
)
def test_it_shows_a_time_as_the_date_filter_would(moment: datetime) -> None:
    local = timezone.localtime(moment)
    expected = format_html(
        '<time datetime="{}" title="{} UTC">{}</time>',
        moment.isoformat(),
        moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        date_format(local, "Y-m-d H:i"),
    )
    assert when(moment) == expected
    assert when(moment, "Y-m-d H:i:s").endswith(f">{date_format(local, 'Y-m-d H:i:s')}</time>")
    assert when(moment, "j M Y").endswith(f">{date_format(local, 'j M Y')}</time>")


@pytest.mark.django_db
def test_a_transcript_asks_the_users_permissions_and_csrf_token_once_a_page(
    client: Any, reviewer: Any, world: Any
) -> None:
    """The per-row actions (tag picker, flag form) keep what they look up for the whole page,
    not for one row: every row renders in a partial of its own."""
    perms = mock.patch.object(User, "has_perm", autospec=True, side_effect=User.has_perm)
    csrf = mock.patch.object(
        CsrfTokenNode, "render", autospec=True, side_effect=CsrfTokenNode.render
    )
    client.force_login(reviewer)
    with perms as has_perm, csrf as csrf_rendered:
        response = client.get(reverse("review:conversation", args=[world.amelia.pk]))
    html = response.content.decode()
    rows = html.count('<li class="msg ')
    assert rows >= 3
    asked = [c.args[1] for c in has_perm.call_args_list]
    assert asked.count("review.raise_flag") == 1 and asked.count("review.tag_archive") <= 2
    # the rows' forms share one; the page's own {% csrf_token %} forms render theirs
    assert csrf_rendered.call_count < rows
    assert html.count('name="csrfmiddlewaretoken"') >= 2 * rows
    assert html.count('<details class="flagform">') == rows + 1  # and the conversation's
    assert html.count('<details class="tagform">') == rows


# `widget` writes plain inputs itself (review_tags._INPUTS): for every input of the forms that
# templates draw through it, whatever the values, the markup is Django's own as_widget's.
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


def _inputs_as_django_writes_them(form: Any) -> int:
    compared = 0
    for bound in form:
        if bound.field.widget.template_name in _INPUTS:
            assert widget(bound) == bound.as_widget(), bound.name
            compared += 1
    return compared


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "q": _TEXT,
            "participant": _TEXT,
            "page": st.one_of(_TEXT, st.integers(-5, 1_000).map(str)),
            "attachment": st.sampled_from(["on", "", "true", "false", "0"]),
            "date_from": _TEXT,
        },
    )
)
def test_the_search_forms_inputs_are_written_as_django_writes_them(data: dict[str, str]) -> None:
    form = search.SearchForm(data or None, user=None)
    assert _inputs_as_django_writes_them(form) >= 5  # q, participant, dates, attachment, page


@pytest.mark.django_db
@pytest.mark.parametrize("bound", [False, True])
def test_other_forms_inputs_are_written_as_django_writes_them(bound: bool) -> None:
    """Required fields, help text (aria-describedby), errors (aria-invalid), own attributes."""
    data: dict[str, str] | None = {"custodian": 'a "b" <c>', "hold": "x"} if bound else None
    none = SavedSearch.objects.none()
    compared = sum(
        _inputs_as_django_writes_them(form)
        for form in (UploadForm(data), HoldForm(data, saved=none), ExportForm(data))
    )
    assert compared >= 5
    if bound:
        assert 'aria-invalid="true"' in widget(ExportForm(data)["hold"])
        assert " required" in widget(HoldForm(data, saved=none)["matter"])


# The search page's filters as templates/review/search.html wrote them before search_filters.
_FILTERS_LOOP = (
    "{% load review_tags %}{% for field in form.visible_fields %}"
    '{% if field.name != "q" and field.name != "page" %}\n'
    "    <label>{{ field.label }} "
    '{% if field.name == "date_from" or field.name == "date_to" %}'
    '<input type="date" name="{{ field.name }}" value="{{ field.value|default_if_none:\'\' }}"'
    ' id="{{ field.id_for_label }}">{% else %}{{ field|widget }}{% endif %}</label>\n'
    "    {% endif %}{% endfor %}"
)
_SHOWN = st.one_of(_TEXT, st.sampled_from(["", "1", "2", "in", "out", "text", "open", "oldest"]))


_FILTERS_TEMPLATE = engines["django"].from_string(_FILTERS_LOOP)


@pytest.fixture
def people() -> dict[str, Any]:
    """Whoever asks: nobody (the domain re-reading a search: every hold), a reviewer (may not
    see holds), legal (may)."""
    found: dict[str, Any] = {"nobody": None}
    for role in (REVIEWER, LEGAL):
        user = User.objects.create(username=f"filters-{role}")
        user.groups.set(Group.objects.filter(name=role))
        found[role] = roles.user_with_authorization(user.pk)
    return found


@pytest.mark.django_db
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    who=st.sampled_from(["nobody", REVIEWER, LEGAL]),
    data=st.fixed_dictionaries(
        {},
        optional={
            name: _SHOWN
            for name in (
                *("q", "channel", "participant", "direction", "type", "date_from", "date_to"),
                *("tag", "flag", "attachment", "hold", "sort", "page"),
            )
        },
    ),
    names=st.lists(_TEXT.filter(str.strip), min_size=2, max_size=2),
)
def test_the_search_forms_filters_are_written_as_the_templates_loop_wrote_them(
    people: dict[str, Any], who: str, data: dict[str, str], names: list[str]
) -> None:
    """Every visible filter in its label, the dates as date inputs, the hold filter only for
    whoever may see holds (hidden, so not among them, for a reviewer)."""
    channel, tag = Channel(pk=1, name=names[0], display_number="+1"), Tag(pk=2, name=names[1])
    lists = search.Lists(channels=[channel], tags=[tag], saved=[])
    form = search.SearchForm(data or None, user=people[who], lists=lists)
    if form.is_bound:
        form.is_valid()
    written = search_filters(form)
    assert written == _FILTERS_TEMPLATE.render({"form": form})
    assert written.count("<label>") == len(form.visible_fields()) - 2
    assert ('name="hold"' in written) == (who != REVIEWER)
