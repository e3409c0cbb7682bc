"""Retention policies in the admin: saved (and sealed) through retention.policies.save(), a 0-day
period only when confirmed, never deleted; holds, dispositions and erasure requests read-only."""

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from archive.models import LedgerEntry
from retention import policies
from retention.models import Disposition, PendingDeletion, RetentionPolicy, RetentionRecord
from tests.review.conftest import World, world

__all__ = ["world"]

ADD = reverse("admin:retention_retentionpolicy_add")


def change_url(policy: RetentionPolicy) -> str:
    return reverse("admin:retention_retentionpolicy_change", args=[policy.pk])


def default() -> RetentionPolicy:
    return RetentionPolicy.objects.get(is_default=True)


def form(**data: Any) -> dict[str, Any]:
    return {"name": "FINRA desk", "days": "2191", "rule": "FINRA 4511: 6 years", **data}


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def test_it_lists_policies_with_their_period_and_channels(admin: Client) -> None:
    html = admin.get(reverse("admin:retention_retentionpolicy_changelist")).content.decode()
    assert "Default: 7 years" in html and "7 years (2,557 days)" in html
    assert "every channel no other policy names" in html


def test_it_adds_a_policy_and_seals_it(admin: Client, world: World, admin_user: Any) -> None:
    response = admin.post(ADD, form(channels=[world.channel.pk]))
    assert response.status_code == 302
    policy = RetentionPolicy.objects.get(name="FINRA desk")
    assert list(policy.channels.all()) == [world.channel]
    sealed = LedgerEntry.objects.get(kind="retention.policy")
    envelope = json.loads(bytes(sealed.envelope))
    assert envelope["policy"] == policy.pk and envelope["days"] == 2191
    assert bytes(sealed.contents.get(name="user").content) == admin_user.username.encode()


def test_it_lengthens_what_is_sealed_when_a_period_grows(admin: Client, world: World) -> None:
    policy = default()
    before = RetentionRecord.objects.filter(policy=policy).earliest("retain_until").retain_until
    data = form(name=policy.name, days="3000", rule=policy.rule, is_default="on")
    response = admin.post(change_url(policy), data, follow=True)
    assert "sealed records are now kept longer" in response.content.decode()
    after = RetentionRecord.objects.filter(policy=policy).earliest("retain_until").retain_until
    assert after > before
    assert LedgerEntry.objects.filter(kind="retention.policy").count() == 1


def test_it_wants_a_zero_day_period_confirmed(admin: Client, world: World) -> None:
    response = admin.post(ADD, form(days="0"))
    assert response.status_code == 200
    assert "Tick this to confirm a period of 0 days." in response.content.decode()
    assert policies.ZERO_DAY_WARNING[:40] in response.content.decode()  # the checkbox's label
    assert not RetentionPolicy.objects.filter(name="FINRA desk").exists()
    assert admin.post(ADD, form(days="0", confirm_zero_days="on")).status_code == 302
    assert RetentionPolicy.objects.get(name="FINRA desk").days == 0


def test_it_shows_the_domains_refusal_as_a_form_error(admin: Client, world: World) -> None:
    policy = default()
    data = form(name=policy.name, days=str(policy.days), rule=policy.rule)  # default unticked
    response = admin.post(change_url(policy), data)
    assert response.status_code == 200
    assert "There must be a default policy" in response.content.decode()
    assert default() == policy
    assert not LedgerEntry.objects.filter(kind="retention.policy").exists()


def test_it_shows_how_many_live_records_a_policy_governs(admin: Client, world: World) -> None:
    live = RetentionRecord.objects.filter(policy=default(), disposed_at__isnull=True).count()
    html = admin.get(change_url(default())).content.decode()
    assert "Live records it governs" in html and f'<div class="readonly">{live:,}</div>' in html


def test_it_never_deletes_a_policy(admin: Client) -> None:
    url = reverse("admin:retention_retentionpolicy_delete", args=[default().pk])
    assert admin.post(url, {"post": "yes"}).status_code == 403
    assert RetentionPolicy.objects.filter(pk=default().pk).exists()


@pytest.mark.parametrize("model", ["legalhold", "disposition", "erasurerequest"])
def test_it_shows_holds_dispositions_and_requests_read_only(admin: Client, model: str) -> None:
    assert admin.get(reverse(f"admin:retention_{model}_changelist")).status_code == 200
    assert admin.get(reverse(f"admin:retention_{model}_add")).status_code == 403


def test_it_lets_no_one_change_a_disposition_in_the_admin(admin: Client, admin_user: Any) -> None:
    planned = Disposition.objects.create(
        state=Disposition.State.AWAITING_APPROVAL,
        requested_by=admin_user,
        upto_seq=0,
        cutoff=timezone.now(),
        planned=1,
    )
    url = reverse("admin:retention_disposition_change", args=[planned.pk])
    admin.post(url, {"state": "approved"})
    planned.refresh_from_db()
    assert planned.state == Disposition.State.AWAITING_APPROVAL


def test_it_lists_a_dispositions_files_not_yet_deleted(admin: Client) -> None:
    done = Disposition.objects.create(
        state=Disposition.State.DONE, upto_seq=0, cutoff=timezone.now(), planned=1
    )
    PendingDeletion.objects.create(
        storage_name="media/ab/ab",
        disposition=done,
        attempts=2,
        attempted_at=timezone.now(),
        error="deleting a media file: the bucket said AccessDenied",
    )
    page = admin.get(reverse("admin:retention_disposition_changelist")).content.decode()
    assert "1: deleting a media file: the bucket said AccessDenied" in page
