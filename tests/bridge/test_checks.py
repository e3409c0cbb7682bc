"""The bridge's system checks; production never trusts a reply's From unless told to."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from bridge import checks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def production(settings: Any) -> Any:
    settings.LOCAL_RUN = False
    settings.BRIDGE_TRUSTED_AUTHSERV_ID = ""
    settings.BRIDGE_ALLOW_UNAUTHENTICATED_SENDERS = False
    return settings


def test_the_mail_gateway_does_not_trust_from_addresses_in_production(production: Any) -> None:
    assert [e.id for e in checks.senders_authenticated()] == ["bridge.E003"]
    with pytest.raises(CommandError, match="BRIDGE_TRUSTED_AUTHSERV_ID is not set"):
        call_command("run_mail_gateway", "--port", "0")


@pytest.mark.parametrize(
    "setting",
    [
        ("BRIDGE_TRUSTED_AUTHSERV_ID", "mx.bank.example"),
        ("BRIDGE_ALLOW_UNAUTHENTICATED_SENDERS", True),
        ("LOCAL_RUN", True),
    ],
)
def test_it_runs_with_an_authserv_id_an_explicit_waiver_or_locally(
    production: Any, setting: tuple[str, Any]
) -> None:
    setattr(production, *setting)
    assert checks.senders_authenticated() == []


def test_manage_py_check_deploy_and_the_gateway_exit_non_zero_without_it(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CLIENTWINDOW_LOCAL": "0",
        "DJANGO_SECRET_KEY": "k" * 50,
        "ALLOWED_HOSTS": "archive.example.com",
        "BRIDGE_TRUSTED_AUTHSERV_ID": "",
        "BRIDGE_ALLOW_UNAUTHENTICATED_SENDERS": "",
    }

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "manage.py", *args]
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    gateway = manage("run_mail_gateway", "--port", "0")
    assert gateway.returncode != 0 and "BRIDGE_TRUSTED_AUTHSERV_ID" in gateway.stderr
    deploy = manage("check", "--deploy")
    assert deploy.returncode != 0 and "bridge.E003" in deploy.stderr
