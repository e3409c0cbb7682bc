"""The retention pages: who may see and do what, legal holds from the browser's forms,
dispositions (previewed, run, approved by a second administrator), GDPR requests and the
record of processing.

Tests that see a disposition actually run commit their data (`committed`): PostgreSQL's now()
stands still inside a test's transaction, so nothing sealed in it is ever past retention.
"""

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Task
from pypdf import PdfReader

from access import roles
from archive.models import LedgerEntry
from messaging import simulator
from messaging.models import Channel, Message
from retention import holds, policies
from retention.models import Disposition, ErasureRequest, LegalHold, RetentionPolicy
from review.models import SavedSearch
from tests.conftest import superuser_connect
from tests.review.conftest import NOW, World, seal, world

__all__ = ["world"]

AMELIA = simulator.DEMO_CLIENTS[0][0]
PAGES = [
    "retention:policies",
    "retention:holds",
    "retention:gdpr",
    "retention:record_of_processing",
    "retention:record_of_processing_pdf",
]


def page(client: Client, user: Any, name: str, *args: Any) -> Any:
    client.force_login(user)
    return client.get(reverse(name, args=args))


def post(client: Client, user: Any, name: str, *args: Any, **data: Any) -> Any:
    client.force_login(user)
    return client.post(reverse(name, args=args), data)


def notices(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def a_hold(world: World, matter: str = "Hart v Firm") -> LegalHold:
    scope = holds.HoldScope.build(conversations=[world.amelia.pk])
    return holds.create(None, matter=matter, reason="Claim notified", scope=scope)


def awaiting(requested_by: Any) -> Disposition:
    return Disposition.objects.create(
        state=Disposition.State.AWAITING_APPROVAL,
        requested_by=requested_by,
        upto_seq=0,
        cutoff=timezone.now(),
        planned=5,
    )


# --- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_it_shows_nothing_to_outsiders(client: Client, outsider: Any, name: str) -> None:
    url = reverse(name)
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(outsider)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("name", PAGES)
def test_it_keeps_reviewers_out_of_retention_holds_and_gdpr(
    client: Client, reviewer: Any, name: str
) -> None:
    assert page(client, reviewer, name).status_code == 403


@pytest.mark.parametrize("role", ["legal", "auditor", "admin_user"])
@pytest.mark.parametrize("name", PAGES)
def test_it_shows_the_pages_to_legal_auditors_and_administrators(
    request: pytest.FixtureRequest, client: Client, role: str, name: str
) -> None:
    assert page(client, request.getfixturevalue(role), name).status_code == 200


@pytest.mark.parametrize(
    ("role", "links"),
    [
        ("reviewer", []),
        ("auditor", ["Retention", "Legal holds", "GDPR"]),
        ("legal", ["Retention", "Legal holds", "GDPR"]),
    ],
)
def test_it_links_the_pages_a_role_may_see(
    request: pytest.FixtureRequest, client: Client, role: str, links: list[str]
) -> None:
    nav = page(client, request.getfixturevalue(role), "home").content.decode()
    nav = nav.split('class="sections"')[1].split("</nav>")[0]
    for name in ("Retention", "Legal holds", "GDPR"):
        assert (f">{name}</a>" in nav) == (name in links)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("retention:preview", []),
        ("retention:dispose", []),
        ("retention:approve", [1]),
        ("retention:reject", [1]),
    ],
)
def test_it_lets_only_administrators_decide_dispositions(
    client: Client, legal: Any, reviewer: Any, name: str, args: list[int]
) -> None:
    assert post(client, legal, name, *args).status_code == 403
    assert post(client, reviewer, name, *args).status_code == 403
    assert not LedgerEntry.objects.filter(kind__startswith="retention.disposition").exists()


def test_it_lets_an_auditor_look_but_not_hold_or_dispose(
    client: Client, world: World, auditor: Any
) -> None:
    hold = a_hold(world)
    assert post(client, auditor, "retention:dispose").status_code == 403
    assert post(client, auditor, "retention:hold_create", matter="X").status_code == 403
    assert post(client, auditor, "retention:hold_release", hold.pk, reason="r").status_code == 403
    detail = page(client, auditor, "retention:hold", hold.pk).content.decode()
    assert "Hart v Firm" in detail and "release-form" not in detail
    assert "hold-form" not in page(client, auditor, "retention:holds").content.decode()


def test_it_shows_an_auditor_the_record_but_not_erasure_requests(
    client: Client, auditor: Any
) -> None:
    shown = page(client, auditor, "retention:gdpr").content.decode()
    assert reverse("retention:record_of_processing") in shown
    assert "erasure-requests" not in shown and "erasure-form" not in shown
    assert (
        post(client, auditor, "retention:erasure_create", number="447700900123").status_code == 403
    )


def test_it_answers_an_unknown_hold_or_disposition_with_404(
    client: Client, admin_user: Any
) -> None:
    assert page(client, admin_user, "retention:hold", 999).status_code == 404
    assert post(client, admin_user, "retention:approve", 999).status_code == 404


# --- policies -------------------------------------------------------------------------------


def test_it_lists_policies_with_live_records_and_channels_under_the_default(
    client: Client, world: World, legal: Any
) -> None:
    Channel.objects.create(name="Quiet desk", phone_number_id="100000000000555")
    shown = page(client, legal, "retention:policies")
    row = shown.context["rows"][0]
    assert row.policy.is_default and row.live > 0 and row.next_expiry is not None
    html = shown.content.decode()
    assert "7 years (2,557 days)" in html and "Quiet desk" in html
    assert "Preview disposition" not in html  # Legal does not see dispositions


# --- legal holds ----------------------------------------------------------------------------


def create(client: Client, user: Any, **data: Any) -> Any:
    fields = {"matter": "Hart v Firm", "reason": "Claim notified", **data}
    return post(client, user, "retention:hold_create", **fields)


def test_it_creates_a_hold_on_conversations(client: Client, world: World, legal: Any) -> None:
    response = create(client, legal, conversations=f"{world.amelia.pk}", custodians="Ann\nBob")
    hold = LegalHold.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("retention:hold", args=[hold.pk])
    assert hold.created_by == legal and hold.custodians == "Ann\nBob"
    expected = Message.objects.filter(conversation=world.amelia).count()
    assert holds.message_counts([hold]) == {hold.pk: expected}
    assert LedgerEntry.objects.filter(kind="legal_hold.created").count() == 1


def test_it_creates_a_hold_on_participants(client: Client, world: World, legal: Any) -> None:
    create(client, legal, participants="+44 7700 900123\n\n")
    assert LegalHold.objects.get().scope == {"participants": [AMELIA]}


def test_it_creates_a_hold_on_a_saved_search(client: Client, world: World, legal: Any) -> None:
    saved = SavedSearch.objects.create(user=legal, name="bonds", query="q=bond&page=2")
    create(client, legal, saved_search=saved.pk)
    hold = LegalHold.objects.get()
    assert hold.scope == {"query": {"q": "bond"}}
    assert holds.message_counts([hold])[hold.pk] > 0


def test_it_creates_a_hold_on_a_date_range(client: Client, world: World, legal: Any) -> None:
    day = timezone.localdate(Message.objects.earliest("sent_at").sent_at)
    create(client, legal, date_from=day.isoformat(), date_to=day.isoformat())
    hold = LegalHold.objects.get()
    assert hold.scope == {"date_from": day.isoformat(), "date_to": day.isoformat()}
    assert holds.message_counts([hold])[hold.pk] > 0


def test_it_offers_only_the_users_own_saved_searches(
    client: Client, world: World, legal: Any, admin_user: Any
) -> None:
    theirs = SavedSearch.objects.create(user=admin_user, name="theirs", query="q=bond")
    response = create(client, legal, saved_search=theirs.pk)
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "A hold needs a scope"),
        ({"conversations": "12, abc"}, "“abc” is not a conversation id"),
        ({"conversations": "999999"}, "There is no conversation 999999"),
        ({"participants": "call me"}, "“call me” is not a WhatsApp number"),
        ({"participants": "123"}, "“123” is not a full WhatsApp number"),
        ({"date_from": "2026-09-02", "date_to": "2026-09-01"}, "end date is before"),
        ({"date_from": "yesterday"}, "Enter a valid date"),
        ({"matter": "", "participants": AMELIA}, "This field is required"),
    ],
)
def test_it_answers_a_bad_hold_with_400_and_why(
    client: Client, world: World, legal: Any, data: dict[str, str], problem: str
) -> None:
    response = create(client, legal, **data)
    assert response.status_code == 400
    assert problem in response.content.decode()
    assert not LegalHold.objects.exists()


def test_it_refuses_a_second_hold_for_a_matter(client: Client, world: World, legal: Any) -> None:
    a_hold(world)
    response = create(client, legal, participants=AMELIA)
    assert response.status_code == 400
    assert "There is already a hold for the matter" in response.content.decode()


def test_it_lists_holds_with_their_message_counts(
    client: Client, world: World, auditor: Any
) -> None:
    hold = a_hold(world)
    shown = page(client, auditor, "retention:holds")
    assert shown.context["rows"] == [(hold, holds.message_counts([hold])[hold.pk])]
    assert "Hart v Firm" in shown.content.decode()


def test_it_shows_a_hold_with_its_scope_counts_and_export(
    client: Client, world: World, legal: Any
) -> None:
    hold = a_hold(world)
    shown = page(client, legal, "retention:hold", hold.pk)
    kinds = dict(shown.context["kinds"])
    assert kinds["message"] == shown.context["messages_held"] > 0
    assert kinds["conversation"] == 1 and "webhook.delivery" in kinds
    html = shown.content.decode()
    assert f"conversations {world.amelia.pk}" in html
    assert 'name="scope" value="hold"' in html and f'name="hold" value="{hold.pk}"' in html


def test_it_requires_a_reason_to_release_a_hold(client: Client, world: World, legal: Any) -> None:
    hold = a_hold(world)
    response = post(client, legal, "retention:hold_release", hold.pk, reason="  ")
    assert response.status_code == 400
    assert "Give a reason." in response.content.decode()
    hold.refresh_from_db()
    assert hold.active


def test_it_releases_a_hold_with_a_reason(client: Client, world: World, legal: Any) -> None:
    hold = a_hold(world)
    response = post(client, legal, "retention:hold_release", hold.pk, reason="Settled")
    assert response.status_code == 302
    hold.refresh_from_db()
    assert not hold.active and hold.released_by == legal and hold.release_reason == "Settled"
    assert LedgerEntry.objects.filter(kind="legal_hold.released").count() == 1
    again = post(client, legal, "retention:hold_release", hold.pk, reason="Twice")
    assert again.status_code == 400 and "already been released" in again.content.decode()


def test_it_widens_a_hold_and_changes_its_custodians(
    client: Client, world: World, legal: Any
) -> None:
    hold = a_hold(world)
    before = holds.message_counts([hold])[hold.pk]
    response = post(
        client,
        legal,
        "retention:hold_change",
        hold.pk,
        reason="Second client joins the claim",
        conversations=str(world.hostile.pk),
        custodians="Ann",
    )
    assert response.status_code == 302
    hold.refresh_from_db()
    assert hold.scope == {"conversations": sorted([world.amelia.pk, world.hostile.pk])}
    assert hold.custodians == "Ann"
    assert holds.message_counts([hold])[hold.pk] > before
    assert LedgerEntry.objects.filter(kind="legal_hold.changed").count() == 1


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"date_from": "2026-01-01"}, "can only be widened"),
        ({"reason": ""}, "Say why the hold changes."),
    ],
)
def test_it_refuses_to_narrow_a_hold_or_change_it_without_a_reason(
    client: Client, world: World, legal: Any, data: dict[str, str], problem: str
) -> None:
    hold = a_hold(world)
    response = post(
        client, legal, "retention:hold_change", hold.pk, **{"reason": "Because", **data}
    )
    assert response.status_code == 400
    assert problem in response.content.decode()
    assert not LedgerEntry.objects.filter(kind="legal_hold.changed").exists()


# --- dispositions ---------------------------------------------------------------------------


def test_it_previews_a_disposition(client: Client, world: World, admin_user: Any) -> None:
    a_hold(world)
    response = post(client, admin_user, "retention:preview")
    assert response.status_code == 200
    report = response.context["report"]
    assert report.count == 0 and report.held == 0  # everything is inside its 7 years
    assert "records are past retention and under no hold" in response.content.decode()


def test_it_says_when_nothing_is_due(client: Client, world: World, admin_user: Any) -> None:
    response = post(client, admin_user, "retention:dispose")
    assert response.status_code == 302
    shown = client.get(response["Location"])
    assert "Nothing is due" in " ".join(notices(shown))
    assert not Disposition.objects.exists()


def test_it_refuses_an_approval_from_the_administrator_who_asked(
    client: Client, admin_user: Any
) -> None:
    planned = awaiting(admin_user)
    response = post(client, admin_user, "retention:approve", planned.pk)
    shown = client.get(response["Location"])
    assert "A second administrator must approve" in " ".join(notices(shown))
    planned.refresh_from_db()
    assert planned.state == Disposition.State.AWAITING_APPROVAL


def test_it_takes_a_second_administrators_approval(
    client: Client, admin_user: Any, make_user: Any
) -> None:
    planned = awaiting(admin_user)
    second = make_user("bea", roles.ADMINISTRATOR)
    post(client, second, "retention:approve", planned.pk)
    planned.refresh_from_db()
    assert planned.state == Disposition.State.APPROVED and planned.approved_by == second
    again = client.post(reverse("retention:approve", args=[planned.pk]), follow=True)
    assert "not waiting for approval" in " ".join(notices(again))


def test_it_rejects_a_disposition_only_with_a_reason(
    client: Client, admin_user: Any, make_user: Any
) -> None:
    planned = awaiting(admin_user)
    second = make_user("bea", roles.ADMINISTRATOR)
    post(client, second, "retention:reject", planned.pk, reason=" ")
    planned.refresh_from_db()
    assert planned.state == Disposition.State.AWAITING_APPROVAL
    post(client, second, "retention:reject", planned.pk, reason="Hold pending")
    planned.refresh_from_db()
    assert planned.state == Disposition.State.REJECTED and planned.error == "Hold pending"
    assert LedgerEntry.objects.filter(kind="retention.disposition.rejected").count() == 1


def test_it_lists_recent_dispositions_with_their_buttons(
    client: Client, admin_user: Any, auditor: Any
) -> None:
    planned = awaiting(admin_user)
    html = page(client, admin_user, "retention:policies").content.decode()
    assert reverse("retention:approve", args=[planned.pk]) in html
    assert reverse("retention:reject", args=[planned.pk]) in html
    html = page(client, auditor, "retention:policies").content.decode()
    assert "awaiting approval" in html
    assert reverse("retention:approve", args=[planned.pk]) not in html


@pytest.fixture
def administrators(committed: None) -> Iterator[tuple[User, User]]:
    """Two administrators, committed; removed afterwards with what refers to them."""
    made = []
    for name in ("ada", "bea"):
        user = User.objects.create_user(name, password="pw", is_staff=True)
        user.groups.set(Group.objects.filter(name=roles.ADMINISTRATOR))
        made.append(user)
    try:
        yield made[0], made[1]
    finally:
        Task.objects.filter(name__startswith="disposition ").delete()
        with superuser_connect() as conn:  # dispositions and access events refer to them
            conn.execute("SET session_replication_role = replica")
            conn.execute("TRUNCATE auth_user RESTART IDENTITY CASCADE")


def zero_day_archive(settings: Any, tmp_path: Path) -> None:
    """The demo conversations on a channel whose policy keeps nothing: due once committed."""
    settings.MEDIA_ROOT = tmp_path
    channel = Channel.objects.create(
        name="Scratch desk", phone_number_id=simulator.DEMO_CHANNEL["phone_number_id"]
    )
    policy = RetentionPolicy(name="Nothing", days=0, rule="no rule applies")
    policies.save(policy, None, [channel], allow_zero=True)
    seal(*simulator.demo_bodies(NOW))


def test_it_disposes_now_and_says_how_much(
    administrators: tuple[User, User], settings: Any, tmp_path: Path
) -> None:
    zero_day_archive(settings, tmp_path)
    client = Client()
    response = post(client, administrators[0], "retention:dispose")
    done = Disposition.objects.get()
    assert done.state == Disposition.State.DONE and done.disposed == done.planned > 0
    said = " ".join(notices(client.get(response["Location"])))
    assert f"Disposition {done.pk} done: {done.disposed:,} records disposed of" in said


def test_it_waits_for_a_second_administrator_then_runs(
    administrators: tuple[User, User],
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Conf, "SYNC", True)  # the queued run happens in this thread
    settings.DISPOSITION_APPROVAL_THRESHOLD = 0
    zero_day_archive(settings, tmp_path)
    ada, bea = administrators
    client = Client()
    said = notices(client.get(post(client, ada, "retention:dispose")["Location"]))
    assert "waits for a second administrator" in " ".join(said)
    planned = Disposition.objects.get()
    post(client, ada, "retention:approve", planned.pk)
    planned.refresh_from_db()
    assert planned.state == Disposition.State.AWAITING_APPROVAL
    post(client, bea, "retention:approve", planned.pk)
    planned.refresh_from_db()
    assert planned.state == Disposition.State.DONE and planned.approved_by == bea
    assert planned.disposed == planned.planned > 0


# --- GDPR -----------------------------------------------------------------------------------


def test_it_records_an_erasure_request_and_shows_the_decision(
    client: Client, world: World, legal: Any
) -> None:
    response = post(
        client, legal, "retention:erasure_create", number="+44 7700 900123", reference="DSR-7"
    )
    made = ErasureRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"#request-{made.pk}")
    assert made.number == AMELIA and made.state == ErasureRequest.State.REFUSED
    shown = client.get(response["Location"])
    assert "refused while retention applies" in " ".join(notices(shown))
    html = shown.content.decode()
    assert "DSR-7" in html and "GDPR Art. 17(3)(b)" in html


@pytest.mark.parametrize(
    ("number", "problem"), [("", "This field is required"), ("call me", "not a WhatsApp number")]
)
def test_it_answers_a_bad_erasure_request_with_400_and_why(
    client: Client, legal: Any, number: str, problem: str
) -> None:
    response = post(client, legal, "retention:erasure_create", number=number)
    assert response.status_code == 400
    assert problem in response.content.decode()
    assert not ErasureRequest.objects.exists()


def test_it_refuses_a_number_too_short(client: Client, legal: Any) -> None:
    response = post(client, legal, "retention:erasure_create", number="12345")
    assert response.status_code == 400
    assert "full WhatsApp number" in response.content.decode()


def test_it_offers_a_redacted_subject_access_export(client: Client, legal: Any) -> None:
    html = page(client, legal, "retention:gdpr").content.decode()
    form = html.split('id="access-form"')[1].split("</form>")[0]
    assert 'name="scope" value="participant"' in form
    assert 'name="redact_others" value="1"' in form
    assert f'action="{reverse("exports:create")}"' in html


# --- the record of processing ---------------------------------------------------------------


@pytest.fixture
def configured(world: World) -> World:
    Channel.objects.filter(pk=world.channel.pk).update(waba_id="200000000000002")
    finra = RetentionPolicy(name="FINRA desk", days=2191, rule="FINRA 4511: 6 years")
    policies.save(finra, None, [world.channel])
    return world


def test_it_writes_the_record_of_processing_from_the_configuration(
    client: Client, configured: World, auditor: Any
) -> None:
    html = page(client, auditor, "retention:record_of_processing").content.decode()
    assert "Demo wealth desk" in html and "442079460000" in html and "200000000000002" in html
    assert "FINRA 4511: 6 years" in html and "6 years (2,191 days)" in html
    assert "Default: 7 years" in html  # the time limits list every policy
    assert "none configured" in html and "Meta Platforms" in html


def test_the_record_names_every_bridge_route_and_relay(
    client: Client, configured: World, auditor: Any, settings: Any
) -> None:
    from bridge.models import Route

    settings.EMAIL_URL = "smtp://relay.bank.example:25"
    settings.JOURNAL_EMAIL_URL = "smtps://journal-relay.bank.example"
    Route.objects.create(
        channel=configured.channel,
        email_recipients=["rm@bank.example"],
        slack_url="https://hooks.slack.com/services/T/B/x",
        journal_address="journal@archive.bank.example",
        metadata_only=True,
    )
    html = page(client, auditor, "retention:record_of_processing").content.decode()
    assert "none configured" not in html
    assert "Mail relay relay.bank.example" in html
    assert "Journal relay journal-relay.bank.example" in html
    assert "email to 1 staff address(es) (notice and a portal link only)" in html
    assert "Slack (hooks.slack.com; notice and a portal link only)" in html
    assert "journal copy of every message to journal@archive.bank.example" in html
    assert "services/T/B/x" not in html  # the webhook's secret path is never shown
    assert "Slack (Salesforce), as the firm&#x27;s processor" in html
    assert "Microsoft, as the firm" not in html  # no Teams route


def test_it_downloads_the_record_as_a_pdf(client: Client, configured: World, legal: Any) -> None:
    response = page(client, legal, "retention:record_of_processing_pdf")
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    pages = PdfReader(io.BytesIO(response.content)).pages
    text = " ".join(" ".join(p.extract_text() for p in pages).split())
    assert "Record of processing activities" in text and "generated" in text
    assert "Demo wealth desk" in text and "FINRA 4511: 6 years" in text
