"""access.backends: the session's user is read with its roles and permissions in one statement,
and is the user Django's ModelBackend would have read, refused where it would refuse."""

import importlib
from datetime import UTC, datetime

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY
from django.contrib.auth.backends import ModelBackend as DjangosModelBackend
from django.contrib.auth.models import Group, Permission, User
from django.contrib.sessions.backends import db
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from access.backends import ModelBackend
from access.roles import REVIEWER, ROLES, roles_of
from clientwindow.sso.backends import LocalLoginPolicy

pytestmark = pytest.mark.django_db

migration = importlib.import_module(
    "clientwindow.migrations.0012_sessions_of_the_one_statement_backend"
)


def test_it_is_the_portals_password_backend():
    assert "access.backends.ModelBackend" in settings.AUTHENTICATION_BACKENDS
    assert "django.contrib.auth.backends.ModelBackend" not in settings.AUTHENTICATION_BACKENDS


@pytest.mark.parametrize("backend", [ModelBackend, LocalLoginPolicy])
@pytest.mark.parametrize("role", ROLES)
def test_it_reads_the_user_roles_and_permissions_in_one_statement(
    backend, role, make_user, django_assert_num_queries
):
    user = make_user(f"one-{role}", role)
    user.user_permissions.add(Permission.objects.get(codename="create_export"))
    roles_of(User.objects.get(pk=user.pk))  # the process's permission names read
    with django_assert_num_queries(1):
        read = backend().get_user(user.pk)
        assert roles_of(read) == [role]
        assert read.has_perm("review.read_archive")
        assert read.has_perm("exports.create_export")
        assert not read.has_perm("archive.add_ledgerentry")
    plain = User.objects.get(pk=user.pk)
    assert read.get_all_permissions() == DjangosModelBackend().get_all_permissions(plain)


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    username=st.text(st.sampled_from("abcxyz019@.+-_"), min_size=1, max_size=40),
    first_name=names,
    last_name=names,
    email=st.emails().filter(lambda e: len(e) <= 254),
    is_staff=st.booleans(),
    is_superuser=st.booleans(),
    last_login=st.none()
    | st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
)
def test_it_reads_the_user_django_would(
    username, first_name, last_name, email, is_staff, is_superuser, last_login
):
    User.objects.filter(username=username).delete()
    user = User.objects.create_user(
        username,
        email,
        "correct horse battery staple",
        first_name=first_name,
        last_name=last_name,
        is_staff=is_staff,
        is_superuser=is_superuser,
        last_login=last_login,
    )
    ours, djangos = ModelBackend().get_user(user.pk), DjangosModelBackend().get_user(user.pk)
    fields = [field.attname for field in User._meta.concrete_fields]
    assert [getattr(ours, f) for f in fields] == [getattr(djangos, f) for f in fields]
    assert (ours._state.db, ours._state.adding) == (djangos._state.db, djangos._state.adding)
    assert ours.get_session_auth_hash() == djangos.get_session_auth_hash()
    assert ours.is_authenticated and ours.check_password("correct horse battery staple")


@pytest.mark.parametrize("backend", [ModelBackend, LocalLoginPolicy])
def test_it_refuses_whom_django_refuses(backend, make_user):
    user = make_user("gone", REVIEWER)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert backend().get_user(user.pk) is None
    assert DjangosModelBackend().get_user(user.pk) is None
    assert backend().get_user(user.pk + 1000) is None


def test_a_request_reads_roles_fresh_with_its_user(reviewer, client):
    """A role taken away counts from the next request, and a password changed elsewhere signs
    the session out, as with Django's own backend."""
    client.force_login(reviewer)
    assert client.session[BACKEND_SESSION_KEY] == "access.backends.ModelBackend"
    assert client.get(reverse("review:search"), {"q": "fund"}).status_code == 200
    reviewer.groups.set([Group.objects.get(name="Auditor")])
    assert client.get(reverse("review:search"), {"q": "fund"}).status_code == 200
    reviewer.groups.clear()
    assert client.get(reverse("review:search"), {"q": "fund"}).status_code == 403
    reviewer.groups.set([Group.objects.get(name=REVIEWER)])
    reviewer.set_password("another horse battery staple")
    reviewer.save()
    assert client.get(reverse("review:search"), {"q": "fund"}).status_code == 302


def signed_in_as(user, backend):
    session = db.SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = backend
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def test_the_migration_keeps_sessions_signed_in(reviewer, client):
    """A session signed in under Django's ModelBackend before the upgrade stays signed in; one
    under another backend is left as it was."""
    kept = signed_in_as(reviewer, migration.DJANGOS)
    other = signed_in_as(reviewer, "clientwindow.sso.backends.LocalLoginPolicy")
    client.cookies[settings.SESSION_COOKIE_NAME] = kept
    assert client.get(reverse("review:search"), {"q": "fund"}).status_code == 302  # not yet

    assert migration.rename_backend(apps, migration.DJANGOS, migration.OURS) == 1
    assert db.SessionStore(kept).load()[BACKEND_SESSION_KEY] == migration.OURS
    assert db.SessionStore(other).load()[BACKEND_SESSION_KEY] == (
        "clientwindow.sso.backends.LocalLoginPolicy"
    )
    kept = signed_in_as(reviewer, migration.DJANGOS)
    migration.rename_backend(apps, migration.DJANGOS, migration.OURS)
    client.cookies[settings.SESSION_COOKIE_NAME] = kept
    assert client.get(reverse("review:search"), {"q": "fund"}).status_code == 200

    assert migration.rename_backend(apps, migration.OURS, migration.DJANGOS) == 2
    assert db.SessionStore(kept).load()[BACKEND_SESSION_KEY] == migration.DJANGOS
