"""Flags and decisions: every decision is sealed in the ledger as the evidence of supervision."""

import json
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.urls import reverse

from archive.envelope import commitment
from archive.models import Content, LedgerEntry
from review import flags
from review.models import Flag, FlagComment, MessageTag, ReviewDecision, Tag


@pytest.fixture
def raiser(make_user: Any) -> Any:
    """Who raises the flags the reviewer decides: nobody decides their own."""
    return make_user("ray", "Reviewer")


@pytest.fixture
def flag(world: Any, raiser: Any) -> Flag:
    message = world.message("wamid.deleted")
    return flags.raise_flag(raiser, message.conversation, message, "promises returns")


def test_it_raises_a_flag_with_a_reason(client: Any, reviewer: Any, world: Any) -> None:
    client.force_login(reviewer)
    message = world.message("wamid.demo-0-1")
    client.post(reverse("review:flag_message", args=[message.pk]), {"note": "large transfer"})
    flag = Flag.objects.get()
    assert (flag.message, flag.source, flag.raised_by, flag.note) == (
        message,
        "manual",
        reviewer,
        "large transfer",
    )
    client.post(reverse("review:flag_message", args=[message.pk]), {"note": "  "})
    assert Flag.objects.count() == 1


def test_it_seals_each_decision_with_who_what_and_why(
    client: Any, reviewer: Any, flag: Flag
) -> None:
    client.force_login(reviewer)
    client.post(
        reverse("review:decide", args=[flag.pk]),
        {"outcome": "not_compliant", "reason": "promise of guaranteed returns"},
    )
    decision = ReviewDecision.objects.get()
    flag.refresh_from_db()
    assert flag.state == "not_compliant" and flag.decided_at is not None
    entry = decision.entry
    envelope = json.loads(bytes(entry.envelope))
    assert envelope["kind"] == "review.decision"
    assert (envelope["flag"], envelope["outcome"], envelope["decided_by"]) == (
        flag.pk,
        "not_compliant",
        reviewer.pk,
    )
    assert envelope["message_seq"] == flag.message.entry_id
    reason = Content.objects.get(entry=entry, name="reason")
    digest = commitment("reason", bytes(reason.salt), b"promise of guaranteed returns")
    assert envelope["commit.reason"] == digest.hex()


def test_it_requires_a_reason_for_not_compliant(reviewer: Any, flag: Flag) -> None:
    with pytest.raises(ValidationError, match="reason is required"):
        flags.decide([flag], reviewer, "not_compliant", " ")
    assert not ReviewDecision.objects.exists()


def test_it_escalates_to_a_named_user_who_then_decides(
    reviewer: Any, make_user: Any, flag: Flag
) -> None:
    senior = make_user("sam", "Reviewer")
    flags.decide([flag], reviewer, "escalated", "needs a second opinion", senior)
    flag.refresh_from_db()
    assert (flag.state, flag.assignee) == ("escalated", senior)
    assert not flags.claim(flag, reviewer)
    flags.decide([flag], senior, "compliant", "context shows a joke")
    flag.refresh_from_db()
    assert flag.state == "compliant"
    assert [d.outcome for d in flag.decisions.all()] == ["escalated", "compliant"]
    with pytest.raises(ValidationError, match="Name the person"):
        flags.decide(
            [flags.raise_flag(senior, flag.conversation, None, "x")], reviewer, "escalated", ""
        )


def test_it_refuses_to_decide_a_flag_twice(reviewer: Any, flag: Flag) -> None:
    flags.decide([flag], reviewer, "compliant", "")
    with pytest.raises(ValidationError, match="already decided"):
        flags.decide([flag], reviewer, "not_compliant", "changed my mind")
    assert ReviewDecision.objects.count() == 1


def test_it_lets_one_reviewer_claim_a_flag(
    client: Any, reviewer: Any, make_user: Any, flag: Flag
) -> None:
    other = make_user("oli", "Reviewer")
    assert flags.claim(flag, reviewer)
    assert not flags.claim(flag, other)
    client.force_login(other)
    response = client.post(reverse("review:claim", args=[flag.pk]), follow=True)
    assert b"already held by rey" in response.content


def test_it_decides_in_bulk_one_sealed_decision_per_flag(
    client: Any, reviewer: Any, raiser: Any, world: Any, flag: Flag
) -> None:
    second = flags.raise_flag(raiser, world.amelia, None, "sample")
    client.force_login(reviewer)
    client.post(
        reverse("review:bulk_decide"),
        {"flag": [flag.pk, second.pk], "outcome": "compliant", "reason": "fine"},
    )
    assert set(Flag.objects.values_list("state", flat=True)) == {"compliant"}
    kinds = LedgerEntry.objects.filter(kind="review.decision").count()
    assert ReviewDecision.objects.count() == kinds == 2


def test_it_seals_comments(client: Any, reviewer: Any, flag: Flag) -> None:
    client.force_login(reviewer)
    client.post(reverse("review:comment", args=[flag.pk]), {"text": "asked the RM"})
    comment = FlagComment.objects.get()
    assert comment.entry.kind == "review.comment" and comment.author == reviewer
    page = client.get(reverse("review:flag", args=[flag.pk])).content.decode()
    assert "asked the RM" in page and f"sealed as ledger entry {comment.entry_id}" in page


def test_it_keeps_decisions_and_comments_append_only(reviewer: Any, flag: Flag) -> None:
    flags.decide([flag], reviewer, "compliant", "")
    with (
        pytest.raises(Exception, match=r"permission denied|append-only|Cannot"),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE review_reviewdecision SET outcome = 'not_compliant'")


def test_it_filters_the_queue(
    client: Any, reviewer: Any, raiser: Any, world: Any, flag: Flag
) -> None:
    decided = flags.raise_flag(raiser, world.amelia, None, "old one")
    flags.decide([decided], reviewer, "compliant", "")
    client.force_login(reviewer)
    page = client.get(reverse("review:queue")).content.decode()
    assert f'href="/review/{flag.pk}/"' in page and f'href="/review/{decided.pk}/"' not in page
    page = client.get(reverse("review:queue"), {"state": "compliant"}).content.decode()
    assert f'href="/review/{decided.pk}/"' in page
    page = client.get(reverse("review:queue"), {"assignee": "me", "state": ""}).content.decode()
    assert "Nothing to review here." in page


def test_it_tags_messages_in_place(client: Any, reviewer: Any, world: Any) -> None:
    client.force_login(reviewer)
    message, tag = world.message("wamid.demo-0-1"), Tag.objects.get()
    url = reverse("review:tag_message", args=[message.pk])
    response = client.post(url, {"tag": tag.pk}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"<html" not in response.content
    assert b"Suitability" in response.content
    assert MessageTag.objects.get().added_by == reviewer
    client.post(url, {"tag": tag.pk, "action": "remove"}, HTTP_HX_REQUEST="true")
    assert not MessageTag.objects.exists()


def test_a_reviewer_cannot_decide_a_flag_another_reviewer_claimed(
    client: Any, reviewer: Any, make_user: Any, flag: Flag
) -> None:
    other = make_user("oli", "Reviewer")
    assert flags.claim(flag, other)
    with pytest.raises(PermissionDenied, match="held by oli"):
        flags.decide([flag], reviewer, "compliant", "")
    client.force_login(reviewer)
    for url, data in (
        (reverse("review:decide", args=[flag.pk]), {"outcome": "compliant"}),
        (reverse("review:bulk_decide"), {"flag": flag.pk, "outcome": "compliant"}),
    ):
        response = client.post(url, data, follow=True)
        assert response.status_code == 200 and b"only they can decide it" in response.content
    assert not ReviewDecision.objects.exists()
    flags.decide([flag], other, "compliant", "")


def test_a_reviewer_cannot_clear_a_flag_they_raised(
    client: Any, reviewer: Any, raiser: Any, world: Any, flag: Flag
) -> None:
    own = flags.raise_flag(reviewer, world.amelia, None, "mine")
    with pytest.raises(PermissionDenied, match="You raised flag"):
        flags.decide([flag, own], reviewer, "compliant", "")  # in bulk: none is decided
    assert not flags.claim(own, reviewer)
    client.force_login(reviewer)
    response = client.post(reverse("review:claim", args=[own.pk]), follow=True)
    assert b"somebody else decides it" in response.content
    response = client.post(
        reverse("review:decide", args=[own.pk]), {"outcome": "compliant"}, follow=True
    )
    assert response.status_code == 200 and b"somebody else decides it" in response.content
    assert not ReviewDecision.objects.exists()
    with pytest.raises(ValidationError, match="other than who raised"):
        flags.decide([flag], reviewer, "escalated", "second opinion", raiser)
