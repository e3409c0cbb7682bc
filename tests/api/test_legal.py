"""The legal API: holds (listed, read, placed and released as the portal does, sealed the same),
retention policies and dispositions, with the retention pages' permissions."""

import json
import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from rest_framework.test import APIClient

from access.sessions import SIGNED_IN
from archive.models import LedgerEntry
from messaging import simulator
from messaging.models import Message
from retention import holds
from retention.models import Disposition, LegalHold
from review.models import SavedSearch
from tests.api.conftest import World, api, world

__all__ = ["world"]

pytestmark = pytest.mark.django_db

AMELIA = simulator.DEMO_CLIENTS[0][0]
ROLES = ["reviewer", "auditor", "legal", "admin_user", "outsider"]


def a_hold(world: World, matter: str = "Hart v Firm") -> LegalHold:
    scope = holds.HoldScope.build(conversations=[world.amelia.pk])
    return holds.create(None, matter=matter, reason="Claim notified", scope=scope)


def place(user: Any, **data: Any) -> Any:
    body = {"matter": "Hart v Firm", "reason": "Claim notified", **data}
    return api(user).post("/api/v1/holds/", body, format="json")


def awaiting(requested_by: Any = None) -> Disposition:
    return Disposition.objects.create(
        state=Disposition.State.AWAITING_APPROVAL,
        requested_by=requested_by,
        upto_seq=0,
        cutoff=timezone.now(),
        planned=5,
        planned_by_kind={"message": 5},
    )


# --- who may do what ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/holds/", {"auditor", "legal", "admin_user"}),
        ("/api/v1/retention-policies/", {"auditor", "legal", "admin_user"}),
        ("/api/v1/dispositions/", {"auditor", "admin_user"}),
    ],
)
def test_it_lets_the_roles_the_portal_lets_read(
    request: pytest.FixtureRequest, path: str, allowed: set[str]
) -> None:
    for role in ROLES:
        expected = 200 if role in allowed else 403
        assert api(request.getfixturevalue(role)).get(path).status_code == expected, role


def test_it_asks_for_credentials(world: World) -> None:
    hold = a_hold(world)
    for path in ("/api/v1/holds/", f"/api/v1/holds/{hold.pk}/", "/api/v1/dispositions/"):
        assert api().get(path).status_code == 401


@pytest.mark.parametrize("role", ["legal", "admin_user"])
def test_it_lets_legal_and_administrators_place_holds(
    request: pytest.FixtureRequest, world: World, role: str
) -> None:
    assert place(request.getfixturevalue(role), scope={"participants": [AMELIA]}).status_code == 201


@pytest.mark.parametrize("role", ["reviewer", "auditor", "outsider"])
def test_it_refuses_to_let_others_place_or_release_holds(
    request: pytest.FixtureRequest, world: World, role: str
) -> None:
    hold = a_hold(world)
    user = request.getfixturevalue(role)
    assert place(user, matter="Other", scope={"participants": [AMELIA]}).status_code == 403
    released = api(user).post(f"/api/v1/holds/{hold.pk}/release/", {"reason": "r"})
    assert released.status_code == 403
    assert LegalHold.objects.get().active
    assert not LedgerEntry.objects.filter(kind="legal_hold.released").exists()


def test_it_shows_an_auditor_a_hold_but_a_reviewer_nothing(
    world: World, auditor: Any, reviewer: Any
) -> None:
    hold = a_hold(world)
    assert api(auditor).get(f"/api/v1/holds/{hold.pk}/").json()["matter"] == "Hart v Firm"
    assert api(reviewer).get(f"/api/v1/holds/{hold.pk}/").status_code == 403


@pytest.mark.parametrize("pk", ["999", "99999999999999999999"])
def test_it_answers_an_unknown_hold_with_404(legal: Any, pk: str) -> None:
    assert api(legal).get(f"/api/v1/holds/{pk}/").status_code == 404
    assert api(legal).post(f"/api/v1/holds/{pk}/release/", {"reason": "r"}).status_code == 404


def test_it_answers_a_post_to_a_hold_that_is_no_number_with_a_404_problem(legal: Any) -> None:
    session = Client(enforce_csrf_checks=True)  # the unknown address, not the CSRF page
    session.force_login(legal)
    response = session.post("/api/v1/holds/abc/release/", {"reason": "r"})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


# --- holds ----------------------------------------------------------------------------------


def test_it_lists_holds_with_scope_people_and_message_counts(
    world: World, auditor: Any, legal: Any
) -> None:
    hold = a_hold(world)
    holds.release(hold, legal, "Settled")
    [shown] = api(auditor).get("/api/v1/holds/").json()["results"]
    assert shown["scope"] == {"conversations": [world.amelia.pk]}
    assert shown["created_by"] is None and shown["released_by"] == "lee"
    assert not shown["active"] and shown["release_reason"] == "Settled"
    assert shown["messages_held"] == Message.objects.filter(conversation=world.amelia).count() > 0


def test_it_pages_holds_by_cursor(world: World, legal: Any) -> None:
    placed = [a_hold(world, f"Matter {n}").pk for n in range(5)]
    seen, url = [], "/api/v1/holds/?limit=2"
    while url:
        page = api(legal).get(url).json()
        seen += [hold["id"] for hold in page["results"]]
        url = page["next"]
    assert seen == placed
    last = api(legal).get(f"/api/v1/holds/?after={placed[-1]}").json()
    assert last == {"results": [], "next": None, "cursor": str(placed[-1])}


def queries(user: Any, path: str, n: int) -> int:
    """How many queries a page of `n` items costs."""
    client = api(user)
    with CaptureQueriesContext(connection) as captured:
        assert len(client.get(f"{path}?limit={n}").json()["results"]) == n
    return len(captured)


def test_it_lists_holds_in_a_fixed_number_of_queries(world: World, legal: Any) -> None:
    for n in range(4):
        holds.release(a_hold(world, f"Matter {n}"), legal, "Settled")
    assert queries(legal, "/api/v1/holds/", 1) == queries(legal, "/api/v1/holds/", 4)


def test_it_shows_a_hold_with_what_it_covers(world: World, legal: Any) -> None:
    hold = a_hold(world)
    shown = api(legal).get(f"/api/v1/holds/{hold.pk}/").json()
    kinds = {row["kind"]: row["count"] for row in shown["covers"]}
    assert kinds["message"] == shown["messages_held"] > 0 and kinds["conversation"] == 1
    assert shown["scope_label"] == f"conversations {world.amelia.pk}"


def test_it_places_a_hold_as_the_portal_does(world: World, legal: Any) -> None:
    response = place(
        legal,
        custodians="Ann\nBob",
        matter_number="M-1",
        scope={"conversations": [world.amelia.pk]},
    )
    hold = LegalHold.objects.get()
    assert response.status_code == 201 and response.json()["id"] == hold.pk
    assert hold.created_by == legal and hold.custodians == "Ann\nBob"
    expected = Message.objects.filter(conversation=world.amelia).count()
    assert response.json()["messages_held"] == holds.message_counts([hold])[hold.pk] == expected


def sealed(matter: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A hold's `legal_hold.created` entry: its envelope, and its contents by name."""
    hold = LegalHold.objects.get(matter=matter)
    entry = next(
        e
        for e in LedgerEntry.objects.filter(kind="legal_hold.created")
        if json.loads(bytes(e.envelope))["hold"] == hold.pk
    )
    return json.loads(bytes(entry.envelope)), {
        c.name: bytes(c.content) for c in entry.contents.all()
    }


def test_it_seals_a_hold_exactly_as_the_portal_does(
    client: Client, world: World, legal: Any
) -> None:
    client.force_login(legal)
    form = {"conversations": f"{world.amelia.pk}", "participants": "+44 7700 900123"}
    client.post(reverse("retention:hold_create"), {"matter": "Portal", "reason": "R", **form})
    scope = {"conversations": [world.amelia.pk], "participants": ["+44 7700 900123"]}
    assert place(legal, matter="API", reason="R", scope=scope).status_code == 201
    portal, through_api = sealed("Portal"), sealed("API")
    assert portal[0].keys() == through_api[0].keys() and portal[0]["kind"] == "legal_hold.created"
    assert portal[1].pop("matter") == b"Portal" and through_api[1].pop("matter") == b"API"
    assert portal[1] == through_api[1]
    assert through_api[1]["user"] == b"lee"


def test_it_places_a_hold_on_a_saved_search_or_a_query(world: World, legal: Any) -> None:
    saved = SavedSearch.objects.create(user=legal, name="bonds", query="q=bond&page=2")
    assert place(legal, scope={"saved_search": saved.pk}).status_code == 201
    assert place(legal, matter="Second", scope={"query": {"q": "bond"}}).status_code == 201
    assert [h.scope for h in LegalHold.objects.order_by("pk")] == [{"query": {"q": "bond"}}] * 2


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({"scope": {}}, "scope", "A hold needs a scope"),
        ({"scope": {"conversations": ["abc"]}}, "scope", "valid integer"),
        ({"scope": {"conversations": [999999]}}, "scope", "There is no conversation 999999"),
        ({"scope": {"conversations": [2**63 - 1]}}, "scope", "There is no conversation"),
        ({"scope": {"conversations": [2**63]}}, "scope", "less than or equal"),
        ({"scope": {"participants": ["call me"]}}, "scope", "is not a WhatsApp number"),
        ({"scope": {"participants": ["123"]}}, "scope", "is not a full WhatsApp number"),
        ({"scope": {"date_from": "2026-09-02", "date_to": "2026-09-01"}}, "scope", "end date"),
        ({"scope": {"date_from": "yesterday"}}, "scope", "Date has wrong format"),
        ({"scope": {"date_from": "0001-01-01"}}, "scope", ""),
        ({"scope": {"query": {"nonsense": "1"}}}, "scope", "is not a search parameter"),
        ({"scope": {"query": {"date_from": "soon"}}}, "scope", "date_from"),
        ({"scope": {"query": {"q": "x"}, "saved_search": 1}}, "scope", "not both"),
        ({"scope": {"saved_search": 123456}}, "scope", "no saved search 123456"),
        ({"matter": "", "scope": {"participants": [AMELIA]}}, "matter", "blank"),
        ({"reason": "  ", "scope": {"participants": [AMELIA]}}, "reason", "blank"),
        ({"scope": "everything"}, "scope", "dictionary"),
    ],
)
def test_it_answers_a_bad_hold_with_a_400_naming_the_field(
    world: World, legal: Any, data: dict[str, Any], field: str, problem: str
) -> None:
    response = place(legal, **data)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"] and problem in json.dumps(response.json())
    assert not LegalHold.objects.exists()


def test_it_holds_what_any_search_text_finds(world: World, legal: Any) -> None:
    response = place(legal, scope={"query": {"q": '"unclosed OR -bond* & |'}})
    assert response.status_code == 201


def test_it_asks_a_session_for_a_recent_sign_in_as_the_portal_does(
    world: World, legal: Any, settings: Any
) -> None:
    hold = a_hold(world)
    session = APIClient()
    session.force_login(legal)
    body = {"matter": "Other", "reason": "R", "scope": {"participants": [AMELIA]}}
    signed_in(session, time.time() - settings.ACCOUNT_REAUTHENTICATION_TIMEOUT - 1)
    refused = session.post("/api/v1/holds/", body, format="json")
    assert refused.status_code == 403 and "Confirm your identity" in refused.json()["detail"]
    assert session.post(f"/api/v1/holds/{hold.pk}/release/", {"reason": "R"}).status_code == 403
    assert LegalHold.objects.get().active
    signed_in(session, time.time())
    assert session.post("/api/v1/holds/", body, format="json").status_code == 201


def signed_in(client: APIClient, at: float) -> None:
    session = client.session
    session[SIGNED_IN] = at
    session.save()


def test_it_does_not_offer_another_users_saved_search(
    world: World, legal: Any, admin_user: Any
) -> None:
    theirs = SavedSearch.objects.create(user=admin_user, name="theirs", query="q=bond")
    response = place(legal, scope={"saved_search": theirs.pk})
    assert response.status_code == 400 and not LegalHold.objects.exists()


def test_it_refuses_a_second_hold_for_a_matter(world: World, legal: Any) -> None:
    a_hold(world)
    response = place(legal, scope={"participants": [AMELIA]})
    assert response.status_code == 400
    assert "There is already a hold" in response.json()["errors"]["matter"][0]


@examples(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.recursive(st.none() | st.booleans() | st.integers() | st.text(), st.lists))
def test_it_answers_any_scope_with_a_hold_or_a_400(legal: Any, body: Any) -> None:
    before = LegalHold.objects.count()
    response = place(legal, matter="Any", scope={"conversations": body, "participants": body})
    assert response.status_code in (201, 400)
    assert LegalHold.objects.count() == before + (response.status_code == 201)


def test_it_releases_a_hold_with_a_reason_once(world: World, legal: Any) -> None:
    hold = a_hold(world)
    url = f"/api/v1/holds/{hold.pk}/release/"
    assert api(legal).post(url, {"reason": " "}, format="json").status_code == 400
    released = api(legal).post(url, {"reason": "Settled"}, format="json")
    assert released.status_code == 200 and released.json()["released_by"] == "lee"
    hold.refresh_from_db()
    assert not hold.active and hold.release_reason == "Settled"
    assert LedgerEntry.objects.filter(kind="legal_hold.released").count() == 1
    again = api(legal).post(url, {"reason": "Twice"}, format="json")
    assert (
        again.status_code == 400 and "already been released" in again.json()["errors"]["reason"][0]
    )


# --- policies and dispositions --------------------------------------------------------------


def test_it_lists_policies_with_periods_channels_and_the_default(
    world: World, auditor: Any
) -> None:
    shown = api(auditor).get("/api/v1/retention-policies/").json()
    [default] = [p for p in shown["results"] if p["default"]]
    assert default["period"] == "7 years (2,557 days)" and default["days"] == 2557
    assert default["live_records"] > 0 and default["next_expiry"] is not None
    assert [c["id"] for c in shown["channels_under_default"]] == [world.channel.pk]


def test_it_lists_dispositions_as_the_portal_does(admin_user: Any) -> None:
    run = awaiting(admin_user)
    [shown] = api(admin_user).get("/api/v1/dispositions/").json()["results"]
    assert shown["id"] == run.pk and shown["state"] == "awaiting"
    assert shown["requested_by"] == "ada" and shown["approved_by"] is None
    assert shown["planned_by_kind"] == {"message": 5} and shown["files_waiting"] == 0


def test_it_pages_dispositions_by_cursor(auditor: Any) -> None:
    runs = [awaiting().pk for _ in range(3)]
    first = api(auditor).get("/api/v1/dispositions/?limit=2").json()
    assert [d["id"] for d in first["results"]] == runs[:2] and first["cursor"] == str(runs[1])
    rest = api(auditor).get(first["next"]).json()
    assert [d["id"] for d in rest["results"]] == runs[2:] and rest["next"] is None


def test_it_lists_dispositions_in_a_fixed_number_of_queries(admin_user: Any) -> None:
    for _ in range(4):
        awaiting(admin_user)
    path = "/api/v1/dispositions/"
    assert queries(admin_user, path, 1) == queries(admin_user, path, 4)


@pytest.mark.parametrize("query", ["after=x", "after=-2", "limit=0", "limit=100000", "limit=1.5"])
def test_it_answers_a_bad_cursor_with_400(auditor: Any, query: str) -> None:
    for path in ("/api/v1/holds/", "/api/v1/dispositions/"):
        assert api(auditor).get(f"{path}?{query}").status_code == 400
