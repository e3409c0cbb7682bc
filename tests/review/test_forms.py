"""The review forms: what a reviewer posts becomes the arguments of one domain call, and anything
else a notice (or a 404 for a tag that does not exist), never a 500."""

from typing import Any

import pytest
from django.http import QueryDict
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from access.boundary import whole_number
from review import flags
from review.forms import BULK_LIMIT, BulkDecisionForm, DecisionForm, FlagForm, TagForm
from review.models import Flag, MessageTag


@pytest.fixture
def flag(world: Any, make_user: Any) -> Flag:
    return flags.raise_flag(make_user("ray", "Reviewer"), world.amelia, None, "check")


def bulk(ids: list[str], visible: Any, **data: str) -> BulkDecisionForm:
    posted = QueryDict(mutable=True)
    posted.setlist("flag", ids)
    posted.update(data)
    return BulkDecisionForm(posted, flags=visible)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=30), max_size=5), st.booleans())
def test_it_reads_any_bulk_flag_list_without_failing(
    flag: Flag, ids: list[str], include: bool
) -> None:
    sent = [*ids, str(flag.pk)] if include else ids
    form = bulk(sent, Flag.objects.all(), outcome="compliant")
    chosen = form.cleaned_data.get("flag") if form.is_valid() else None
    named = flag.pk in {whole_number(v) for v in sent}
    assert chosen == ([flag] if named else None)
    if not named:
        assert form.errors["flag"] == ["Choose at least one flag."]


def test_it_passes_over_flags_the_user_cannot_see(flag: Flag) -> None:
    form = bulk([str(flag.pk)], Flag.objects.none(), outcome="compliant")
    assert not form.is_valid()
    assert form.errors["flag"] == ["Choose at least one flag."]


def test_it_reads_at_most_the_bulk_limit_of_ids(flag: Flag) -> None:
    form = bulk(["0"] * BULK_LIMIT + [str(flag.pk)], Flag.objects.all(), outcome="claim")
    assert not form.is_valid() and "flag" in form.errors


def test_it_names_an_unknown_outcome_as_the_domain_does(db: None) -> None:
    form = DecisionForm({"outcome": "maybe", "reason": ""})
    assert not form.is_valid()
    assert form.errors["outcome"] == ["Unknown outcome 'maybe'."]
    assert DecisionForm({"outcome": ""}).is_valid()  # flags.decide names it unknown


def test_it_escalates_only_to_a_reviewer(reviewer: Any, outsider: Any) -> None:
    for given_pk, expected in ((reviewer.pk, reviewer), (outsider.pk, None), ("²", None)):
        form = DecisionForm({"outcome": "escalated", "escalate_to": given_pk})
        assert form.is_valid() and form.cleaned_data["escalate_to"] == expected


def test_it_limits_a_flag_note_to_2000_characters(db: None) -> None:
    assert FlagForm({"note": "x" * 2000}).is_valid()
    assert FlagForm({"note": "x" * 2001}).errors["note"] == [
        "Ensure this value has at most 2000 characters (it has 2001)."
    ]


def test_it_answers_404_for_a_tag_that_does_not_exist(
    client: Any, reviewer: Any, world: Any
) -> None:
    assert TagForm({"tag": "999999"}).errors["tag"] == ["No such tag."]
    client.force_login(reviewer)
    message = world.message("wamid.demo-0-1")
    for tag in ("999999", "²", ""):
        response = client.post(reverse("review:tag_message", args=[message.pk]), {"tag": tag})
        assert response.status_code == 404, tag
    assert not MessageTag.objects.exists()
