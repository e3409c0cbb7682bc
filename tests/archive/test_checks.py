import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from archive.checks import (
    check_records_store,
    check_separate_roles,
    check_signing_key,
    refuse_to_start_a_server,
)
from archive.storage_config import storage_options


def test_it_accepts_separate_runtime_and_owner_roles():
    assert check_separate_roles() == []


def test_it_warns_when_the_runtime_role_owns_the_tables(monkeypatch):
    monkeypatch.delitem(django_settings.DATABASES, "owner")
    assert [w.id for w in check_separate_roles()] == ["archive.W001"]


def test_it_requires_a_signing_key_file_in_production(settings):
    settings.LEDGER_SIGNING_KEY_AUTOCREATE = False
    settings.LEDGER_SIGNING_KEY_FILE = Path("/nonexistent/key.pem")
    assert [e.id for e in check_signing_key()] == ["archive.E002"]


UNREACHABLE = "s3://x?endpoint=http://127.0.0.1:9&addressing=path"


def records_at(settings, url):
    settings.STORAGES = {
        **settings.STORAGES,
        "records": storage_options("STORAGE_URL", url, "archive.objectstore.FileStore"),
    }


def test_it_warns_when_records_are_on_the_filesystem_in_production(settings):
    settings.LOCAL_RUN = False
    assert [w.id for w in check_records_store()] == ["archive.W002"]


def test_it_accepts_the_filesystem_in_a_local_run(settings):
    settings.LOCAL_RUN = True
    assert check_records_store() == []


def test_it_accepts_a_compliance_bucket_when_worm_is_required(worm_bucket, settings):
    settings.STORAGE_REQUIRE_WORM = True
    assert check_records_store() == []


def test_it_fails_when_worm_is_required_and_the_bucket_is_unreachable(s3_server, settings):
    settings.STORAGE_REQUIRE_WORM = True
    records_at(settings, UNREACHABLE)
    (error,) = check_records_store()
    assert error.id == "archive.E003"
    assert "the bucket cannot be reached" in error.msg


def test_it_names_missing_credentials(worm_bucket, settings, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings.STORAGE_REQUIRE_WORM = True
    (error,) = check_records_store()
    assert "no AWS credentials were found" in error.msg


def test_it_refuses_to_start_a_worker_without_worm(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.STORAGE_REQUIRE_WORM = True
    with pytest.raises(ImproperlyConfigured, match=r"Refusing to start: .* is not WORM"):
        refuse_to_start_a_server(["manage.py", "qcluster"])
    refuse_to_start_a_server(["manage.py", "storage", "check"])  # the mending commands run


def run_manage(*args, **env):
    """manage.py in a child process with the test database and `env` added."""
    environment = {**os.environ, "CLIENTWINDOW_LOCAL": "1", **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=django_settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_qcluster_refuses_to_start_with_one_clear_error(tmp_path):
    result = run_manage(
        "qcluster", "--run-once", STORAGE_REQUIRE_WORM="1", MEDIA_ROOT=str(tmp_path)
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: Refusing to start")
    assert "a filesystem enforces no retention" in last
