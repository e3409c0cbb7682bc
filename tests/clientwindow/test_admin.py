"""The admin hands out roles: an administrator who is not a superuser never makes one, never
grants raw permissions, never edits a group or a superuser's account."""

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User

from access import roles

PASSWORD = "correct horse battery staple"


def change_form(user: User, **fields: Any) -> dict[str, Any]:
    return {
        "username": user.username,
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        **fields,
    }


def perm(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@pytest.fixture
def root(db: None) -> User:
    user = User.objects.create_superuser("root", password=PASSWORD)
    user.groups.add(Group.objects.get(name=roles.ADMINISTRATOR))  # the admin asks for the role
    return user


def test_an_administrator_can_make_a_superuser_no_longer(client: Any, admin_user: Any) -> None:
    client.force_login(admin_user)
    made = client.post(
        "/admin/auth/user/add/",
        {
            "username": "mallory",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert made.status_code == 302
    mallory = User.objects.get(username="mallory")
    url = f"/admin/auth/user/{mallory.pk}/change/"
    page = client.get(url).content.decode()
    assert "is_superuser" not in page and "Can change group" not in page
    administrator = Group.objects.get(name=roles.ADMINISTRATOR)
    export = perm("exports.create_export")
    saved = client.post(
        url,
        change_form(
            mallory,
            is_staff="on",
            is_superuser="on",
            groups=[administrator.pk],
            user_permissions=[export.pk],
        ),
    )
    assert saved.status_code == 302
    mallory.refresh_from_db()
    assert not mallory.is_superuser
    assert list(mallory.groups.all()) == [administrator]
    assert list(mallory.user_permissions.all()) == [export]
    for raw in (
        {"user_permissions": [perm("auth.change_group").pk]},
        {"groups": [Group.objects.create(name="q").pk]},
    ):
        refused = client.post(url, change_form(mallory, **raw))
        assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert list(mallory.user_permissions.all()) == [export]


def test_an_administrator_cannot_take_over_a_superusers_account(
    client: Any, admin_user: Any, root: User
) -> None:
    client.force_login(admin_user)
    url = f"/admin/auth/user/{root.pk}/"
    assert client.post(f"{url}change/", change_form(root, is_active="")).status_code == 403
    assert client.get(f"{url}password/").status_code == 403
    new_password = {"password1": "x" * 20, "password2": "x" * 20, "usable_password": "true"}
    assert client.post(f"{url}password/", new_password).status_code == 403
    assert client.get("/admin/clientwindow/apitoken/add/").status_code == 403  # nobody adds one
    root.refresh_from_db()
    assert root.is_active and root.check_password(PASSWORD)


def test_administrators_cannot_edit_group_permissions(client: Any, admin_user: Any) -> None:
    admin_user.user_permissions.add(perm("auth.change_group"), perm("auth.add_group"))
    client.force_login(admin_user)
    group = Group.objects.get(name=roles.REVIEWER)
    everything = list(Permission.objects.values_list("pk", flat=True))
    data = {"name": roles.REVIEWER, "permissions": everything}
    assert client.post(f"/admin/auth/group/{group.pk}/change/", data).status_code == 403
    assert client.post("/admin/auth/group/add/", {"name": "x"}).status_code == 403
    assert group.permissions.count() == len(roles.ROLE_PERMISSIONS[roles.REVIEWER])


def test_a_superuser_still_manages_everything(client: Any, root: User, reviewer: Any) -> None:
    client.force_login(root)
    page = client.get(f"/admin/auth/user/{reviewer.pk}/change/").content.decode()
    assert "is_superuser" in page and "Can change group" in page
