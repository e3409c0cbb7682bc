import pytest
from django.contrib.auth.models import Group

from clientwindow.roles import ROLE_PERMISSIONS, ROLES

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
