"""manage.py apply_retention, approve_disposition, retention, hold and erasure: the portal's
retention work, scriptable, through the same domain functions.

Tests that dispose of anything commit (the `desk` fixture): a record is due only once its
transaction has committed and retain_until <= now(), and now() stands still inside a test's
transaction.
"""

import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone
from django_q.models import OrmQ

from archive.models import Content, LedgerEntry
from messaging import media, simulator
from messaging.graph import Download
from messaging.models import Channel, MediaFile, Message
from retention import disposition, holds, policies, tasks
from retention.assign import Policies
from retention.holds import HoldScope
from retention.management.commands._cli import flat, row, when
from retention.models import (
    Disposition,
    ErasureRequest,
    HoldItem,
    LegalHold,
    RetentionPolicy,
    RetentionRecord,
)
from tests.conftest import superuser_connect, wipe_archive
from tests.review.conftest import NOW, PNG, World, inbound, seal, world

__all__ = ["world"]

CHANNEL = simulator.DEMO_CHANNEL["phone_number_id"]
AMELIA = simulator.DEMO_CLIENTS[0][0]
HOSTILE = "15550001234"  # tests/review/conftest.py's sender of hostile input
OWN = f"Channel {CHANNEL}"


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def refused(problem: str, *args: str) -> None:
    with pytest.raises(CommandError, match=re.escape(problem)):
        run(*args)


def set_policy(days: str, *more: str) -> str:
    """`retention set` for the demo channel; a repeated option in `more` wins (argparse)."""
    return run("retention", "set", "--channel", CHANNEL, "--days", days, "--rule", "FINRA", *more)


# --- retention: policies -----------------------------------------------------------------------


def test_it_makes_a_policy_the_channels_own(world: World) -> None:
    said = set_policy("3000")
    policy = RetentionPolicy.objects.get(name=OWN)
    lengthened = RetentionRecord.objects.filter(policy=policy).count()
    assert lengthened > 0
    assert said.splitlines() == [
        f"created policy {OWN} (3000 days)",
        f"channel {CHANNEL} follows policy {OWN}",
        f"records lengthened: {lengthened}",
    ]
    assert Policies.load().for_channel(world.channel.pk).id == policy.pk
    assert LedgerEntry.objects.filter(kind="retention.policy").count() == 1


def test_it_changes_the_channels_policy_rather_than_adding_one(
    world: World, admin_user: Any
) -> None:
    set_policy("3000")
    said = set_policy("2600", "--rule", "SEC", "--user", "ada")
    assert said.splitlines()[0] == f"changed policy {OWN} (2600 days)"
    assert said.splitlines()[-1] == "records lengthened: 0"  # shorter never reaches back
    assert RetentionPolicy.objects.filter(is_default=False).get().rule == "SEC"
    change = LedgerEntry.objects.filter(kind="retention.policy").order_by("seq").last()
    assert bytes(change.contents.get(name="user").content) == b"ada"


def test_it_takes_the_channel_from_a_longer_policy_so_its_own_applies(world: World) -> None:
    longer = RetentionPolicy(name="Litigation desk", days=4000, rule="by agreement")
    policies.save(longer, None, [world.channel])
    said = set_policy("3000").splitlines()
    assert said[0] == f"channel {CHANNEL} taken from policy Litigation desk (4000 days)"
    assert not longer.channels.exists()
    assert Policies.load().for_channel(world.channel.pk).days == 3000


def test_it_keeps_the_other_channels_of_a_named_policy(world: World) -> None:
    other = Channel.objects.create(name="Desk 2", phone_number_id="100000000000009")
    policies.save(RetentionPolicy(name="FINRA", days=2191, rule="6 years"), None, [other])
    said = set_policy("2200", "--name", "FINRA")
    assert "policy FINRA also applies to channels 100000000000009" in said.splitlines()
    assert {c.pk for c in RetentionPolicy.objects.get(name="FINRA").channels.all()} == {
        other.pk,
        world.channel.pk,
    }


def test_it_refuses_a_zero_day_period_unless_allowed(world: World) -> None:
    with pytest.raises(CommandError) as refusal:
        set_policy("0")
    assert str(refusal.value) == f"{policies.ZERO_DAY_WARNING} Add --allow-zero to go on."
    assert not RetentionPolicy.objects.filter(name=OWN).exists()
    warned = StringIO()
    args = ["--channel", CHANNEL, "--days", "0", "--rule", "none", "--allow-zero"]
    call_command("retention", "set", *args, stdout=StringIO(), stderr=warned)
    assert warned.getvalue() == f"warning: {policies.ZERO_DAY_WARNING}\n"
    assert RetentionPolicy.objects.get(name=OWN).days == 0
    with pytest.raises(CommandError, match="Add --allow-zero to go on"):
        run("retention", "default", "--days", "0", "--rule", "none")
    assert RetentionPolicy.objects.get(is_default=True).days == 2557


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--channel", "999"], "no channel with the phone number id '999'"),
        (["--days", "-1"], "'-1' is not a number of days from 0 to 36525"),
        (["--days", "forever"], "'forever' is not a number of days"),
        (["--rule", " "], "rule: This field cannot be blank."),
        (["--name", "Default: 7 years"], "'Default: 7 years' is the default policy"),
        (["--user", "nobody"], "no user 'nobody'"),
    ],
)
def test_it_says_what_is_wrong_with_a_policy(world: World, args: list[str], problem: str) -> None:
    with pytest.raises(CommandError, match=re.escape(problem)):
        set_policy("30", *args)
    assert not RetentionPolicy.objects.filter(is_default=False).exists()


def test_it_lists_policies_with_their_live_records(world: World) -> None:
    set_policy("3000", "--rule", "FINRA 4511\n(books and records)")
    default, own = RetentionPolicy.objects.all()
    live = {p: RetentionRecord.objects.filter(policy=p).count() for p in (default, own)}
    assert run("retention", "list").splitlines() == [
        "name\tdays\trule\tdefault\tchannels\tlive records",
        f"Default: 7 years\t2557\t{flat(default.rule)}\tyes\t-\t{live[default]}",
        f"{OWN}\t3000\tFINRA 4511 (books and records)\tno\t{CHANNEL}\t{live[own]}",
    ]


def test_it_changes_the_default_policy_and_lengthens_what_it_kept(world: World) -> None:
    said = run("retention", "default", "--days", "2922", "--rule", "8y", "--name", "Default: 8y")
    default = RetentionPolicy.objects.get(is_default=True)
    assert (default.name, default.days, default.rule) == ("Default: 8y", 2922, "8y")
    assert said.splitlines() == [
        "changed the default policy: Default: 8y (2922 days)",
        f"records lengthened: {RetentionRecord.objects.count()}",
    ]
    messages = RetentionRecord.objects.filter(kind="message")
    assert not messages.filter(retain_until__lt=F("sealed_at") + timedelta(days=2922)).exists()


def test_it_keeps_every_record_at_least_the_new_default_period(world: World) -> None:
    run("retention", "default", "--days", "2922", "--rule", "8y")
    short = RetentionRecord.objects.filter(retain_until__lt=F("sealed_at") + timedelta(days=2922))
    assert not short.exists()


def test_it_asks_which_action() -> None:
    refused("the following arguments are required: ACTION", "retention")


# --- hold: legal holds -------------------------------------------------------------------------


def create_hold(*scope: str, matter: str = "Hart v Desk") -> str:
    return run("hold", "create", "--matter", matter, "--reason", "Litigation expected", *scope)


def test_it_creates_a_hold_from_repeated_and_combined_options(world: World, legal: Any) -> None:
    said = create_hold(
        *("--participant", "+44 7700 900123", "--participant", HOSTILE),
        *("--conversation", str(world.amelia.pk), "--query", "statement"),
        *("--custodian", "Ada Lovelace", "--custodian", "Lee", "--number", "2026-CV-17"),
        *("--from", "2026-01-01", "--to", "2026-12-31", "--user", legal.username),
    )
    hold = LegalHold.objects.get()
    assert hold.scope == {
        "conversations": [world.amelia.pk],
        "participants": [HOSTILE, AMELIA],
        "query": {"q": "statement"},
        "date_from": "2026-01-01",
        "date_to": "2026-12-31",
    }
    held = holds.held_messages(hold).count()
    assert held == HoldScope.from_json(hold.scope).messages().count() > 0
    assert said.splitlines() == [
        f"hold {hold.pk} created: Hart v Desk",
        f"scope: {HoldScope.from_json(hold.scope).label()}",
        f"messages held: {held}",
    ]
    assert (hold.matter_number, hold.custodians, hold.created_by) == (
        "2026-CV-17",
        "Ada Lovelace\nLee",
        legal,
    )


def test_it_holds_a_search(world: World) -> None:
    create_hold("--query", "statement")
    held = holds.held_messages(LegalHold.objects.get())
    found = Message.objects.filter(text__icontains="statement")
    assert found.exists() and not found.exclude(pk__in=held.values("pk")).exists()
    assert not held.exclude(text__icontains="statement").filter(target_wamid="").exists()


def test_it_narrows_a_hold_by_dates(world: World) -> None:
    said = create_hold("--participant", AMELIA, "--from", "2027-01-01")
    assert said.splitlines()[-1] == "messages held: 0"


@pytest.mark.parametrize(
    ("scope", "problem"),
    [
        (["--participant", AMELIA, "--from", "2026-13-01"], "'2026-13-01' is not a date"),
        (["--participant", AMELIA, "--to", "21.9.2026"], "'21.9.2026' is not a date (YYYY-MM-DD)"),
        (["--query", "x", "--from", "2026-02-02", "--to", "2026-01-01"], "end date is before"),
        (["--conversation", "999999"], "There is no conversation 999999."),
        (["--conversation", "one"], "argument --conversation: invalid int value: 'one'"),
        (["--participant", "12"], "“12” is not a full WhatsApp number."),
        (["--participant", "Amelia"], "'Amelia' is not a WhatsApp number"),
        (["--number", "9" * 101, "--participant", AMELIA], "--number is longer than 100"),
        ([], "A hold needs a scope"),
    ],
)
def test_it_says_what_is_wrong_with_a_hold(world: World, scope: list[str], problem: str) -> None:
    refused(problem, "hold", "create", "--matter", "M", "--reason", "R", *scope)
    assert not LegalHold.objects.exists()


def test_it_refuses_a_second_hold_for_a_matter(world: World) -> None:
    create_hold("--participant", AMELIA)
    with pytest.raises(CommandError, match="already a hold for the matter"):
        create_hold("--participant", HOSTILE)


def test_it_lists_holds(world: World) -> None:
    create_hold("--participant", AMELIA, "--number", "CV-1")
    create_hold("--participant", HOSTILE, matter="Hostile")
    run("hold", "release", "Hostile", "--reason", "Closed")
    first, second = LegalHold.objects.order_by("pk")
    counts = holds.message_counts([first, second])
    assert run("hold", "list").splitlines() == [
        "id\tmatter\tnumber\tstate\tmessages\tcreated",
        f"{first.pk}\tHart v Desk\tCV-1\tactive\t{counts[first.pk]}\t{when(first.created_at)}",
        f"{second.pk}\tHostile\t-\treleased\t{counts[second.pk]}\t{when(second.created_at)}",
    ]


def test_it_shows_a_hold(world: World, legal: Any) -> None:
    create_hold("--participant", AMELIA, "--custodian", "Ada", "--user", legal.username)
    run("hold", "release", "Hart v Desk", "--reason", "Settled\nin full")
    hold = LegalHold.objects.get()
    lines = run("hold", "show", "Hart v Desk").splitlines()
    assert lines[:10] == [
        f"hold {hold.pk}: Hart v Desk",
        "matter number: -",
        "state: released",
        "reason: Litigation expected",
        "custodian: Ada",
        f"scope: participants +{AMELIA}",
        f"created: {when(hold.created_at)} by lee",
        f"refreshed: {when(hold.refreshed_at)}",
        f"released: {when(hold.released_at)} by system",
        "release reason: Settled in full",
    ]
    kinds = HoldItem.objects.filter(hold=hold)
    assert lines[10] == f"messages held: {kinds.filter(kind='message').count()}"
    assert lines[11] == f"items held: {kinds.count()}"
    assert "  participant: 1" in lines[12:]


def test_it_releases_a_hold_once(world: World, legal: Any) -> None:
    create_hold("--participant", AMELIA)
    said = run("hold", "release", "Hart v Desk", "--reason", "Settled", "--user", "lee")
    hold = LegalHold.objects.get()
    assert said == f"hold {hold.pk} released: Hart v Desk\n"
    assert (hold.active, hold.released_by, hold.release_reason) == (False, legal, "Settled")
    refused(
        "This hold has already been released.", "hold", "release", "Hart v Desk", "--reason", "x"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["show", "No such matter"],
        ["release", "No such matter", "--reason", "x"],
    ],
)
def test_it_names_an_unknown_matter(world: World, args: list[str]) -> None:
    refused("no hold for the matter 'No such matter'", "hold", *args)


def test_it_asks_for_a_reason_to_release(world: World) -> None:
    create_hold("--participant", AMELIA)
    refused("the following arguments are required: --reason", "hold", "release", "Hart v Desk")
    refused("Releasing a hold needs a reason.", "hold", "release", "Hart v Desk", "--reason", " ")


def test_it_refreshes_active_holds_with_newly_sealed_messages(world: World) -> None:
    create_hold("--participant", AMELIA)
    before = HoldItem.objects.count()
    later = {"id": "wamid.later", "timestamp": str(NOW + 500), "type": "text"}
    seal(inbound(AMELIA, "Amelia Hart", {**later, "text": {"body": "One more thing"}}))
    said = run("hold", "refresh")
    added = HoldItem.objects.count() - before
    assert added > 0
    assert said.splitlines() == [f"hold items added: {added}", "active holds: 1"]
    assert holds.held_messages(LegalHold.objects.get()).filter(wamid="wamid.later").exists()


# --- erasure: GDPR requests --------------------------------------------------------------------


# retention/erasure.py seals the request's state as an ErasureRequest.State member, which the
# ledger refuses (fields must be plain str/int/bool/None): every erasure.record() raises, after
# the request row is saved and its disposition has run. Remove once the domain is fixed.
def test_it_records_an_erasure_request_refused_while_retention_applies(world: World) -> None:
    lines = run("erasure", "record", "+44 7700 900123", "--reference", "DSAR-7").splitlines()
    request = ErasureRequest.objects.get()
    assert (request.number, request.reference, request.recorded_by) == (AMELIA, "DSAR-7", None)
    assert lines[:4] == [
        f"erasure request {request.pk} for +{AMELIA}: refused while retention applies (scheduled)",
        f"records: {request.records}",
        "disposed: 0",
        f"due: {when(request.due_at)}",
    ]
    assert lines[4].startswith("legal ground: GDPR Art. 17(3)(b)")
    assert "Default: 7 years" in lines[4] and len(lines) == 5  # nothing was due: no disposition


def test_it_names_the_hold_that_keeps_a_subjects_records(world: World) -> None:
    create_hold("--participant", AMELIA)
    said = run("erasure", "record", AMELIA)
    assert "legal ground: GDPR Art. 17(3)(e)" in said and "“Hart v Desk”" in said


def test_it_records_that_nothing_is_held_about_a_subject(world: World, legal: Any) -> None:
    said = run("erasure", "record", "4915112345678", "--user", "lee")
    request = ErasureRequest.objects.get()
    assert said.splitlines() == [
        f"erasure request {request.pk} for +4915112345678: nothing held",
        "records: 0",
        "disposed: 0",
        "due: -",
    ]
    assert request.recorded_by == legal


def test_it_lists_erasure_requests(world: World) -> None:
    run("erasure", "record", AMELIA, "--reference", "DSAR-7")
    run("erasure", "record", "4915112345678")
    first, second = ErasureRequest.objects.order_by("pk")
    assert run("erasure", "list").splitlines() == [
        "id\tnumber\treference\tstate\trecords\tdisposed\treceived\tdue\tlegal ground",
        row(first.pk, f"+{AMELIA}", "DSAR-7", "refused", first.records, 0,
            when(first.received_at), when(first.due_at), first.legal_ground),
        f"{second.pk}\t+4915112345678\t-\tnothing\t0\t0\t{when(second.received_at)}\t-\t-",
    ]  # fmt: skip


def test_it_refuses_a_number_too_short_to_be_anyones(world: World) -> None:
    refused("Give the subject's full WhatsApp number.", "erasure", "record", "12")
    assert not ErasureRequest.objects.exists()


# --- apply_retention and approve_disposition, inside retention ---------------------------------


def test_it_dry_runs_what_the_disposition_would_do(world: World) -> None:
    with time_machine.travel(timezone.now(), tick=False):  # the report says when records fall due
        assert run("apply_retention", "--dry-run").splitlines() == disposition.report().lines()
    assert not Disposition.objects.exists()


def test_it_says_when_nothing_is_due(world: World, admin_user: Any) -> None:
    assert run("apply_retention", "--user", "ada") == "nothing due\n"
    assert not Disposition.objects.exists()


def test_it_wants_an_existing_active_user(world: World, outsider: User) -> None:
    refused("no user 'nobody'", "apply_retention", "--user", "nobody")
    outsider.is_active = False
    outsider.save(update_fields=["is_active"])
    refused("the user 'otto' is inactive", "apply_retention", "--user", "otto")


@pytest.fixture
def approvers(make_user: Any) -> tuple[User, User]:
    permission = Permission.objects.get(codename="apply_retention")
    people = make_user("asker"), make_user("second")
    for person in people:
        person.user_permissions.add(permission)
    return people


@pytest.fixture
def awaiting(world: World, approvers: tuple[User, User]) -> Disposition:
    return Disposition.objects.create(
        state=Disposition.State.AWAITING_APPROVAL,
        requested_by=approvers[0],
        upto_seq=disposition.frontier()[0],
        cutoff=disposition.frontier()[1],
        planned=3,
    )


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--user", "asker"], "A second administrator must approve: not the one who asked."),
        (["--user", "rey"], "Only administrators approve dispositions."),
        (["--user", "nobody"], "no user 'nobody'"),
        ([], "the following arguments are required: --user"),
    ],
)
def test_it_refuses_an_approval_from_the_requester_or_a_non_administrator(
    awaiting: Disposition, reviewer: User, args: list[str], problem: str
) -> None:
    refused(problem, "approve_disposition", str(awaiting.pk), *args)
    awaiting.refresh_from_db()
    assert awaiting.state == Disposition.State.AWAITING_APPROVAL


def test_it_names_an_unknown_disposition(approvers: tuple[User, User]) -> None:
    refused("no disposition 999999", "approve_disposition", "999999", "--user", "second")


def test_it_approves_and_runs_at_once(awaiting: Disposition) -> None:
    said = run("approve_disposition", str(awaiting.pk), "--user", "second")
    awaiting.refresh_from_db()
    assert said.splitlines() == [
        f"disposition {awaiting.pk} approved by second",
        f"disposition {awaiting.pk} done: 0 records disposed, 0 media files",  # none due here
    ]
    assert (awaiting.state, awaiting.approved_by.username) == (Disposition.State.DONE, "second")
    refused(
        "This disposition is not waiting for approval.",
        "approve_disposition",
        str(awaiting.pk),
        "--user",
        "second",
    )


def test_it_fails_with_the_dispositions_error(awaiting: Disposition) -> None:
    broken = RuntimeError("storage unreachable")
    with mock.patch.object(holds, "refresh_active", autospec=True, side_effect=broken):
        refused(
            f"disposition {awaiting.pk} failed after 0 records disposed: "
            "RuntimeError: storage unreachable",
            *("approve_disposition", str(awaiting.pk), "--user", "second"),
        )
    awaiting.refresh_from_db()
    assert awaiting.state == Disposition.State.FAILED


# --- committed: what is past retention actually goes ------------------------------------------

IMAGE_FROM = "4915198765432"
HIGH_WATER = ("auditlog_logentry", "django_q_ormq", "auth_user")


@pytest.fixture
def desk(committed: None, settings: Any, tmp_path: Path) -> Iterator[Channel]:
    """A channel whose records are due as soon as they commit (a 0-day policy set before any
    is sealed). Committed rows outlive the test: afterwards the archive is wiped, then the users,
    audit log entries and queued tasks the test made are removed."""
    settings.MEDIA_ROOT = tmp_path
    with superuser_connect() as conn:
        marks = {
            t: conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0]
            for t in HIGH_WATER
        }
    channel = Channel.objects.create(name="Desk", phone_number_id=CHANNEL)
    run("retention", "set", "--channel", CHANNEL, "--days", "0", "--allow-zero", "--rule", "test")
    yield channel
    wipe_archive()  # first: its rows point at the users
    with superuser_connect() as conn:
        for table, mark in marks.items():
            conn.execute(f"DELETE FROM {table} WHERE id > %s", [mark])


def seal_archive() -> str:
    """The demo conversations and a stored image, sealed and committed; the image's name."""
    image = {"id": "wamid.image", "timestamp": str(NOW + 100), "type": "image"}
    image["image"] = {"id": "media-img", "mime_type": "image/png", "caption": "my passport"}
    seal(*simulator.demo_bodies(NOW), inbound(IMAGE_FROM, "Ines", image))
    fetched = Download(PNG, hashlib.sha256(PNG).hexdigest(), "image/png")
    media._store(Message.objects.get(wamid="wamid.image"), "media-img", fetched, "image/png")
    stored = MediaFile.objects.get().storage_name
    assert default_storage.exists(stored)
    return stored


def administrators(*names: str) -> list[User]:
    return [User.objects.create_user(name, is_superuser=True) for name in names]


def assert_gone(messages: list[Message]) -> None:
    seqs = [m.entry_id for m in messages]
    assert set(
        Message.objects.filter(pk__in=[m.pk for m in messages]).values_list("text", flat=True)
    ) == {""}
    assert not Content.objects.filter(entry_id__in=seqs).exists()


def test_it_disposes_of_what_is_past_retention_and_the_archive_still_verifies(
    desk: Channel,
) -> None:
    stored = seal_archive()
    dry = run("apply_retention", "--dry-run").splitlines()
    due = int(dry[0].split()[0])
    assert due > 0 and "  stored media files to delete: 1" in dry
    assert not Disposition.objects.exists() and Message.objects.exclude(text="").exists()
    said = run("apply_retention")
    done = Disposition.objects.get()
    assert said == f"disposition {done.pk} done: {due} records disposed, 1 media files\n"
    assert_gone(list(Message.objects.all()))
    assert not default_storage.exists(stored)
    call_command("verify_archive", stdout=StringIO())  # SystemExit(1) when broken
    assert run("apply_retention") == "nothing due\n"


def test_it_exits_non_zero_with_the_error_of_a_failed_disposition(desk: Channel) -> None:
    seal_archive()
    broken = [0, RuntimeError("storage unreachable")]  # the plan's refresh, then the run's
    with mock.patch.object(holds, "refresh_active", autospec=True, side_effect=broken):
        refused("failed after 0 records disposed: RuntimeError: storage unreachable",
                "apply_retention")  # fmt: skip
    assert Disposition.objects.get().state == Disposition.State.FAILED
    assert not Message.objects.filter(text="").exists()


def test_it_waits_for_a_second_administrator_then_runs_once(desk: Channel, settings: Any) -> None:
    settings.DISPOSITION_APPROVAL_THRESHOLD = 1
    administrators("asker", "second")
    seal_archive()
    said = run("apply_retention", "--user", "asker")
    planned = Disposition.objects.get()
    assert said == (
        f"disposition {planned.pk} waiting for a second administrator's approval: "
        f"planned {planned.planned}\n"
    )
    refused("not the one who asked", "approve_disposition", str(planned.pk), "--user", "asker")
    said = run("approve_disposition", str(planned.pk), "--user", "second")
    planned.refresh_from_db()
    assert said.splitlines()[-1] == (
        f"disposition {planned.pk} done: {planned.planned} records disposed, 1 media files"
    )
    assert_gone(list(Message.objects.all()))
    queued = [q.task for q in OrmQ.objects.all() if q.func() == "retention.tasks.run_disposition"]
    assert [tuple(task["args"]) for task in queued] == [(planned.pk,)]  # the worker's, on approval
    entries = LedgerEntry.objects.count()
    assert tasks.run_disposition(planned.pk) == (
        f"disposition {planned.pk}: Done, {planned.planned} disposed"
    )
    assert LedgerEntry.objects.count() == entries  # the second run did nothing


def test_it_spares_what_a_hold_covers_until_it_is_released(desk: Channel) -> None:
    seal_archive()
    kept = list(Message.objects.filter(conversation__participant__wa_id=AMELIA))
    run("hold", "create", "--matter", "Hart", "--participant", AMELIA, "--reason", "Litigation")
    run("apply_retention")
    assert not Message.objects.filter(pk__in=[m.pk for m in kept], text="").exists()
    assert_gone(list(Message.objects.exclude(pk__in=[m.pk for m in kept])))
    dry = run("apply_retention", "--dry-run").splitlines()
    assert dry[0].startswith("0 records past retention")
    assert re.fullmatch(
        r"[1-9]\d* more are past retention but kept by an active legal hold", dry[-1]
    )
    run("hold", "release", "Hart", "--reason", "Settled")
    assert "done" in run("apply_retention")
    assert_gone(kept)
    call_command("verify_archive", stdout=StringIO())


def test_it_carries_out_an_erasure_request_past_retention(desk: Channel) -> None:
    seal_archive()
    theirs = list(Message.objects.filter(conversation__participant__wa_id=AMELIA))
    lines = run("erasure", "record", "+44 7700 900123", "--reference", "DSAR-7").splitlines()
    request = ErasureRequest.objects.get()
    planned = Disposition.objects.get(erasure=request)
    assert lines == [
        f"erasure request {request.pk} for +{AMELIA}: carried out",
        f"records: {request.records}",
        f"disposed: {request.records}",
        "due: -",
        f"disposition {planned.pk} done: {request.records} records disposed, 0 media files",
    ]
    assert_gone(theirs)
    assert Message.objects.exclude(text="").exists()  # nobody else's
