import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse
from rest_framework.test import APIClient

from access.roles import REVIEWER, ROLE_PERMISSIONS, ROLES, roles_of
from clientwindow.tokens import new_token

pytestmark = pytest.mark.django_db


def test_it_creates_the_four_roles():
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_it_gives_each_role_exactly_its_permissions(role):
    group = Group.objects.get(name=role)
    held = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
    assert held == set(ROLE_PERMISSIONS[role])


def test_it_never_lets_a_role_change_the_ledger():
    for group in Group.objects.all():
        codenames = set(group.permissions.values_list("codename", flat=True))
        assert not codenames & {"add_ledgerentry", "change_ledgerentry", "delete_ledgerentry"}


def test_the_api_schema_answers_only_users_with_a_role(outsider, auditor):
    def schema(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {new_token(user, 'test', 1)[1]}")
        return client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert schema(outsider).status_code == 403
    assert schema(auditor).status_code == 200


def fresh(user):
    """The user as a request sees it: read again, nothing cached on it."""
    return User.objects.get(pk=user.pk)


@pytest.mark.parametrize("role", ROLES)
def test_it_reads_roles_and_permissions_in_one_statement(
    role, make_user, django_assert_num_queries
):
    user = fresh(make_user(f"one-{role}", role))
    roles_of(fresh(make_user(f"before-{role}", role)))  # the process's permission names read
    with django_assert_num_queries(1):
        assert roles_of(user) == [role]
        assert user.has_perm("review.read_archive")
        assert not user.has_perm("archive.add_ledgerentry")


@pytest.mark.parametrize("role", ROLES)
def test_it_gives_the_permissions_django_would(role, make_user):
    user = make_user(f"same-{role}", role)
    user.user_permissions.add(Permission.objects.get(codename="create_export"))
    folded, plain = fresh(user), fresh(user)
    roles_of(folded)
    assert folded.get_all_permissions() == ModelBackend().get_all_permissions(plain)
    assert folded.get_group_permissions() == ModelBackend().get_group_permissions(plain)
    assert folded.get_user_permissions() == {"exports.create_export"}


def test_it_names_a_permission_added_since_it_read_their_names(make_user):
    """Permissions come as ids, named from a map read once a process (roles._permission_names):
    one it has not seen reads the map again."""
    roles_of(fresh(make_user("first", REVIEWER)))
    added = Permission.objects.create(
        codename="read_later",
        name="Can read later",
        content_type=Permission.objects.get(codename="create_export").content_type,
    )
    user = make_user("later", REVIEWER)
    user.user_permissions.add(added)
    user = fresh(user)
    roles_of(user)
    assert user.has_perm("exports.read_later") and user.get_user_permissions() == {
        "exports.read_later"
    }


def test_it_leaves_a_superuser_every_permission(make_user):
    user = make_user("root")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    user = fresh(user)
    roles_of(user)
    assert user.has_perm("archive.view_ledgerentry")


def test_a_revoked_reviewer_loses_access_at_the_next_request(reviewer, client):
    client.force_login(reviewer)
    assert client.get(reverse("review:search"), {"q": "fund"}).status_code == 200
    reviewer.groups.clear()
    assert client.get(reverse("review:search"), {"q": "fund"}).status_code == 403


def test_a_permission_taken_from_a_role_counts_at_the_next_request(reviewer, client):
    client.force_login(reviewer)
    assert client.get(reverse("review:conversations")).status_code == 200
    group = Group.objects.get(name=REVIEWER)
    group.permissions.remove(Permission.objects.get(codename="read_archive"))
    assert client.get(reverse("review:conversations")).status_code == 403
