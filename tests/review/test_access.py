"""Who may open what: every page and fragment, for every role and for an outsider."""

from datetime import timedelta
from typing import Any

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from review import access
from review.models import AccessEvent, Flag, SavedSearch

READ_PAGES = [
    ("review:conversations", None),
    ("review:conversation", "amelia"),
    ("review:search", None),
    ("review:queue", None),
    ("review:flag", "flag"),
]


def url_for(name: str, arg: str | None, world: Any, flag: Flag) -> str:
    if arg == "amelia":
        return reverse(name, args=[world.amelia.pk])
    if arg == "flag":
        return reverse(name, args=[flag.pk])
    return reverse(name)


@pytest.fixture
def flag(world: Any, reviewer: Any) -> Flag:
    return Flag.objects.create(
        conversation=world.amelia, source=Flag.Source.MANUAL, note="check", raised_by=reviewer
    )


@pytest.mark.parametrize(("name", "arg"), READ_PAGES)
def test_it_sends_anonymous_visitors_to_log_in(
    client: Any, world: Any, flag: Flag, name: str, arg: str | None
) -> None:
    response = client.get(url_for(name, arg, world, flag))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("name", "arg"), READ_PAGES)
def test_it_shows_an_outsider_nothing(
    client: Any, outsider: Any, world: Any, flag: Flag, name: str, arg: str | None
) -> None:
    client.force_login(outsider)
    response = client.get(url_for(name, arg, world, flag))
    assert response.status_code == 403
    assert b"Amelia" not in response.content


@pytest.mark.parametrize("role", ["reviewer", "auditor", "legal", "admin_user"])
@pytest.mark.parametrize(("name", "arg"), READ_PAGES)
def test_it_lets_every_role_read(
    client: Any, request: Any, world: Any, flag: Flag, role: str, name: str, arg: str | None
) -> None:
    client.force_login(request.getfixturevalue(role))
    assert client.get(url_for(name, arg, world, flag)).status_code == 200


def fragment_urls(world: Any, flag: Flag) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, url, data) of every fragment and action."""
    message = world.message("wamid.demo-0-0")
    image = world.message("wamid.image")
    return [
        (
            "get",
            reverse("review:conversation_messages", args=[world.amelia.pk]),
            {"before": message.pk},
        ),
        ("get", reverse("review:media", args=[image.pk]), {}),
        ("get", reverse("review:leave"), {"to": "https://example.org/"}),
        ("get", reverse("review:search_count"), {"q": "fund"}),
        ("post", reverse("review:tag_conversation", args=[world.amelia.pk]), {"tag": 1}),
        ("post", reverse("review:tag_message", args=[message.pk]), {"tag": 1}),
        ("post", reverse("review:flag_message", args=[message.pk]), {"note": "x"}),
        ("post", reverse("review:flag_conversation", args=[world.amelia.pk]), {"note": "x"}),
        ("post", reverse("review:claim", args=[flag.pk]), {}),
        ("post", reverse("review:decide", args=[flag.pk]), {"outcome": "compliant"}),
        ("post", reverse("review:comment", args=[flag.pk]), {"text": "x"}),
        ("post", reverse("review:bulk_decide"), {"flag": flag.pk, "outcome": "compliant"}),
        ("post", reverse("review:save_search"), {"name": "x", "query": "q=a"}),
        ("get", reverse("review:access_log"), {}),
    ]


def test_it_refuses_an_outsider_every_fragment_and_action(
    client: Any, outsider: Any, world: Any, flag: Flag
) -> None:
    client.force_login(outsider)
    for method, url, data in fragment_urls(world, flag):
        response = getattr(client, method)(url, data)
        assert response.status_code == 403, url
    assert not AccessEvent.objects.exists()
    assert Flag.objects.count() == 1 and not SavedSearch.objects.exists()
    assert Flag.objects.get().state == Flag.State.OPEN


@pytest.mark.parametrize("role", ["auditor", "legal"])
def test_it_lets_auditors_and_legal_read_but_change_nothing(
    client: Any, request: Any, world: Any, flag: Flag, role: str
) -> None:
    client.force_login(request.getfixturevalue(role))
    for method, url, data in fragment_urls(world, flag):
        response = getattr(client, method)(url, data)
        if method == "get" and "access-log" not in url:
            assert response.status_code == 200, url
        elif "saved" in url:  # saving a search is one's own bookmark, not a change to evidence
            assert response.status_code == 302, url
        else:
            assert response.status_code == 403, url
    assert Flag.objects.count() == 1
    assert Flag.objects.get().state == Flag.State.OPEN


def test_it_keeps_the_access_log_for_administrators(
    client: Any, reviewer: Any, admin_user: Any, world: Any
) -> None:
    client.force_login(reviewer)
    assert client.get(reverse("review:access_log")).status_code == 403
    client.force_login(admin_user)
    assert client.get(reverse("review:access_log")).status_code == 200


def test_it_answers_404_for_what_does_not_exist(client: Any, reviewer: Any, world: Any) -> None:
    client.force_login(reviewer)
    assert client.get(reverse("review:conversation", args=[999999])).status_code == 404
    assert client.get(reverse("review:flag", args=[999999])).status_code == 404
    assert client.get(reverse("review:media", args=[999999])).status_code == 404


def test_it_keeps_saved_searches_private(
    client: Any, reviewer: Any, auditor: Any, world: Any
) -> None:
    saved = SavedSearch.objects.create(user=reviewer, name="mine", query="q=bond")
    client.force_login(auditor)
    assert b"mine" not in client.get(reverse("review:search")).content
    url = reverse("review:delete_saved_search", args=[saved.pk])
    assert client.post(url).status_code == 404
    assert SavedSearch.objects.filter(pk=saved.pk).exists()


@pytest.mark.parametrize(
    "table", ["review_accessevent", "review_reviewdecision", "review_flagcomment"]
)
@pytest.mark.parametrize("change", ["UPDATE {table} SET id = id", "DELETE FROM {table}"])
def test_it_lets_nobody_edit_the_evidence_of_review(db: None, table: str, change: str) -> None:
    from django.db import connection, transaction

    with (
        pytest.raises(Exception, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(change.format(table=table))


def test_it_lets_administrators_run_a_lexicon_over_a_date_range(
    client: Any, admin_user: Any, world: Any
) -> None:
    from review.models import LexiconPolicy, LexiconTerm

    policy = LexiconPolicy.objects.create(name="Secrecy")
    LexiconTerm.objects.create(policy=policy, kind="phrase", value="tell nobody")
    client.force_login(admin_user)
    url = reverse("admin:review_lexiconpolicy_changelist")
    form = client.post(url, {"action": "run_over_range", "_selected_action": [policy.pk]})
    assert b"Run lexicon policies over a date range" in form.content
    client.post(
        url,
        {
            "action": "run_over_range",
            "_selected_action": [policy.pk],
            "start": "2026-09-01",
            "end": "2026-09-30",
        },
    )
    assert Flag.objects.get().message.wamid == "wamid.deleted"


def test_it_pages_the_conversation_list_by_cursor(client: Any, reviewer: Any, world: Any) -> None:
    from review import conversation_list

    seen, cursor = [], ""
    while True:
        page = conversation_list.page(conversation_list.Filters(after=cursor), size=1)
        seen += [row.conversation_id for row in page.rows]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    everything = conversation_list.page(conversation_list.Filters(), size=100)
    assert seen == [row.conversation_id for row in everything.rows] and len(seen) == 4
    oldest = conversation_list.page(conversation_list.Filters(oldest=True), size=100)
    assert [r.conversation_id for r in oldest.rows] == seen[::-1]
    client.force_login(reviewer)
    html = client.get(reverse("review:conversations"), {"who": "amelia"}).content.decode()
    assert "Amelia Hart" in html and "Étienne" not in html


def recorded_around_nothing(request: Any, *args: Any) -> None:
    with access.recording(request, *args):
        pass


@pytest.mark.parametrize("record", [access.record_access, recorded_around_nothing])
@pytest.mark.parametrize(
    ("remote", "stored"),
    [("203.0.113.7", "203.0.113.7"), ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1")],
)
def test_an_access_event_is_written_as_the_orm_would_write_it(
    reviewer: Any, remote: str, stored: str, record: Any
) -> None:
    """record_access and recording send their INSERT themselves: every column as
    AccessEvent.objects.create() would store it, the address normalised, the detail as JSON,
    the time the database's."""
    request = RequestFactory().get("/", REMOTE_ADDR=remote)
    request.user = reviewer
    detail = {
        "query": 'a "quoted" ünïcode',
        "filters": {"channel": "1"},
        "results": 3,
        "more": False,
    }
    before = timezone.now()
    record(request, AccessEvent.Action.SEARCH, "message", 42, detail)
    event = AccessEvent.objects.get()
    assert (event.user, event.username, event.address) == (reviewer, reviewer.username, stored)
    assert (event.action, event.object_type, event.object_id) == ("search", "message", "42")
    assert event.detail == detail and event.at >= before - timedelta(seconds=5)
