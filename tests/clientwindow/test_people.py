"""Administration of people: changing users and groups asks who you are again, an administrator
never makes a superuser nor takes over another administrator, every change is in the audit log,
and nobody approves a disposition asked for by someone they just created or promoted."""

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from allauth.mfa.totp.internal.auth import TOTP
from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from access import roles
from retention import disposition
from retention.models import Disposition

PASSWORD = "correct horse battery staple"
NOW = timezone.now().replace(microsecond=0)


def sign_in(client: Client, user: User) -> None:
    response = client.post("/accounts/login/", {"login": user.username, "password": PASSWORD})
    assert response.status_code == 302


def awaiting(requested_by: User) -> Disposition:
    return Disposition.objects.create(
        state=Disposition.State.AWAITING_APPROVAL,
        requested_by=requested_by,
        upto_seq=0,
        cutoff=timezone.now(),
        planned=5,
    )


# --- the admin ------------------------------------------------------------------------------


def test_it_asks_for_the_password_again_before_changing_a_user(
    client: Client, admin_user: User, reviewer: User
) -> None:
    url = f"/admin/auth/user/{reviewer.pk}/change/"
    with time_machine.travel(NOW, tick=False) as clock:
        sign_in(client, admin_user)
        assert client.get(url).status_code == 200  # just signed in
        clock.shift(timedelta(minutes=6))
        asked = client.get(url)
        assert asked.status_code == 302 and asked["Location"].startswith(
            "/accounts/reauthenticate/"
        )
        client.post("/accounts/reauthenticate/", {"password": PASSWORD})
        assert client.get(url).status_code == 200


def test_it_never_lets_an_administrator_add_a_superuser(client: Client, admin_user: User) -> None:
    sign_in(client, admin_user)
    administrator = Group.objects.get(name=roles.ADMINISTRATOR)
    client.post(
        "/admin/auth/user/add/",
        {
            "username": "mallory",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "is_superuser": "on",
            "groups": [administrator.pk],
            "user_permissions": [1, 2, 3],
        },
    )
    mallory = User.objects.get(username="mallory")
    assert not mallory.is_superuser and not mallory.is_staff
    assert not mallory.groups.exists() and not mallory.user_permissions.exists()


def test_it_keeps_another_administrators_password_theirs(
    client: Client, admin_user: User, make_user: Any, reviewer: User
) -> None:
    other = make_user("bea", roles.ADMINISTRATOR)
    sign_in(client, admin_user)
    assert client.get(f"/admin/auth/user/{other.pk}/password/").status_code == 403
    assert client.get(f"/admin/auth/user/{reviewer.pk}/password/").status_code == 200
    assert client.get(f"/admin/auth/user/{admin_user.pk}/password/").status_code == 200


def test_it_records_who_created_a_user_and_gave_them_a_role(
    client: Client, admin_user: User, reviewer: User
) -> None:
    sign_in(client, admin_user)
    client.post(
        "/admin/auth/user/add/",
        {
            "username": "newt",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    newt = User.objects.get(username="newt")
    legal = Group.objects.get(name=roles.LEGAL)
    client.post(
        f"/admin/auth/user/{newt.pk}/change/",
        {
            "username": "newt",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "groups": [legal.pk],
        },
    )
    entries = LogEntry.objects.get_for_object(newt).filter(actor=admin_user)
    assert entries.filter(action=LogEntry.Action.CREATE).exists()
    promoted = {"type": "m2m", "operation": "add", "objects": ["Legal"]}
    assert entries.filter(changes__groups=promoted).exists()
    assert "newt" in client.get("/admin/auditlog/logentry/").content.decode()
    client.force_login(reviewer)
    assert client.get("/admin/auditlog/logentry/").status_code == 302  # to the admin's sign-in


def test_it_shows_second_factors_without_their_secrets(client: Client, reviewer: User) -> None:
    root = User.objects.create_superuser("root", password=PASSWORD)
    root.groups.add(Group.objects.get(name=roles.ADMINISTRATOR))
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    totp = TOTP.activate(reviewer, secret).instance
    client.force_login(root)
    page = client.get(f"/admin/mfa/authenticator/{totp.pk}/change/")
    assert page.status_code == 200 and "rey" in page.content.decode()
    assert secret not in page.content.decode()
    assert LogEntry.objects.get_for_object(totp).get().action == LogEntry.Action.CREATE


# --- separation of duties -------------------------------------------------------------------


def created_by(actor: User, username: str, *role_names: str) -> User:
    with set_actor(actor):
        user = User.objects.create_user(username)
        user.groups.set(Group.objects.filter(name__in=role_names))
    return user


def test_it_refuses_an_approval_by_whoever_created_the_requester(admin_user: User) -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        asker = created_by(admin_user, "newt", roles.ADMINISTRATOR)
        planned = awaiting(asker)
        with pytest.raises(ValidationError, match="you created their account on"):
            disposition.approve(planned, admin_user)
        clock.shift(timedelta(days=30, seconds=1))
        assert disposition.approve(planned, admin_user).state == Disposition.State.APPROVED


@pytest.mark.parametrize("given", ["role", "permission"])
def test_it_refuses_an_approval_by_whoever_gave_the_requester_a_role_or_permission(
    admin_user: User, make_user: Any, given: str
) -> None:
    asker = make_user("newt")
    with set_actor(admin_user):
        if given == "role":
            asker.groups.add(Group.objects.get(name=roles.ADMINISTRATOR))
        else:
            asker.user_permissions.add(Permission.objects.get(codename="apply_retention"))
    planned = awaiting(asker)
    with pytest.raises(
        ValidationError, match=f"the one who asked is newt, and you gave them a {given}"
    ):
        disposition.approve(planned, admin_user)
    other = make_user("bea", roles.ADMINISTRATOR)
    assert disposition.approve(planned, other).approved_by == other


def test_the_command_refuses_the_same(admin_user: User) -> None:
    planned = awaiting(created_by(admin_user, "newt", roles.ADMINISTRATOR))
    with pytest.raises(CommandError, match="you created their account"):
        call_command("approve_disposition", str(planned.pk), "--user", admin_user.username)
    planned.refresh_from_db()
    assert planned.state == Disposition.State.AWAITING_APPROVAL
