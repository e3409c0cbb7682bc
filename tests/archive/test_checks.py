from pathlib import Path

from django.conf import settings as django_settings

from archive.checks import check_separate_roles, check_signing_key


def test_it_accepts_separate_runtime_and_owner_roles():
    assert check_separate_roles() == []


def test_it_warns_when_the_runtime_role_owns_the_tables(monkeypatch):
    monkeypatch.delitem(django_settings.DATABASES, "owner")
    assert [w.id for w in check_separate_roles()] == ["archive.W001"]


def test_it_requires_a_signing_key_file_in_production(settings):
    settings.LEDGER_SIGNING_KEY_AUTOCREATE = False
    settings.LEDGER_SIGNING_KEY_FILE = Path("/nonexistent/key.pem")
    assert [e.id for e in check_signing_key()] == ["archive.E002"]
