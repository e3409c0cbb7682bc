"""The `idp` fixture (the test IdP, once per session) and signing in at it as a browser would.

In a test module: `idp, sso = fixtures.idp, fixtures.sso` (a plain import would shadow them).
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clientwindow.sso import config as sso_config

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "clientwindow-tests"
CLIENT_SECRET = "the test client's secret"
PASSWORD = "idp password"
USERS = ("rita", "adam", "nora", "lena")
CALLBACK = "/accounts/oidc/sso/login/callback/"
ROLE_MAP = "cw-reviewers=Reviewer,cw-auditors=Auditor,cw-legal=Legal,cw-admins=Administrator"


@dataclass
class IdP:
    url: str
    directory: Path

    @property
    def issuer(self) -> str:
        return f"{self.url}/o"

    def set(self, mode: str = "normal", **groups: list[str]) -> None:
        """Each named user's `groups` claim, and how the IdP issues ID tokens."""
        users = {name: {"groups": value} for name, value in groups.items()}
        self.directory.write_text(json.dumps({"mode": mode, "users": users}))


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdP]:
    home = tmp_path_factory.mktemp("idp")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (home / "signing-key.pem").write_bytes(pem)
    setup = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        # 127.0.0.1: any port (RFC 8252), for the browser tests' live server
        "redirect_uris": [f"http://testserver{CALLBACK}", f"http://127.0.0.1{CALLBACK}"],
        "users": dict.fromkeys(USERS, PASSWORD),
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        "OIDC_PROVIDER_DIR": str(home),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider.serve", json.dumps(setup)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.isdigit(), "the test identity provider did not start"
        server = IdP(url=f"http://127.0.0.1:{port}", directory=home / "directory.json")
        server.set()
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sso(idp: IdP, settings: Any) -> IdP:
    """The portal configured for the test IdP, as the OIDC_* environment would configure it."""
    settings.SOCIALACCOUNT_PROVIDERS = sso_config.providers(
        issuer=idp.issuer,
        client_id=CLIENT_ID,
        secret=CLIENT_SECRET,
        scopes="openid profile email groups",
        name="Test IdP",
    )
    settings.OIDC_ROLE_MAP = sso_config.role_map(ROLE_MAP)
    settings.OIDC_ROLES_CLAIM = "groups"
    directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {**directives, "form-action": ["'self'", idp.url]}
    }
    idp.set()
    return idp


def sign_in_at_idp(idp: IdP, username: str, authorize_url: str) -> str:
    """Follow the portal's redirect to the IdP, sign in there; the callback URL it sends back."""
    browser = requests.Session()
    to_login = browser.get(authorize_url, allow_redirects=False, timeout=10)
    login_url = urljoin(idp.url, to_login.headers["Location"])
    browser.get(login_url, timeout=10)
    signed_in = browser.post(
        login_url,
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": browser.cookies["idp_csrftoken"],
        },
        allow_redirects=False,
        timeout=10,
    )
    authorized = browser.get(
        urljoin(idp.url, signed_in.headers["Location"]), allow_redirects=False, timeout=10
    )
    callback: str = authorized.headers["Location"]
    return callback
