import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from access.roles import ROLE_PERMISSIONS, ROLES
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
