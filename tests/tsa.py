"""A real RFC 3161 timestamp authority on loopback for the anchoring tests: OpenSSL's
`openssl ts -reply` behind scripts/local_tsa.py, one per test session, its PKI in a temporary
directory.

Fixtures (registered in tests/conftest.py):

- `tsa_server`: the running LocalTsa (`.url`, `.ca_file` the root PEM, `.chain_file` the TSA
  certificate and root, `.mode` one of local_tsa.MODES).
- `tsa`: the same server with settings.TSA_URLS = [its url] and TSA_CA_FILE = its root for
  one test; its mode goes back to "ok" afterwards.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.local_tsa import LocalTsa


@pytest.fixture(scope="session")
def tsa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTsa]:
    server = LocalTsa(Path(tmp_path_factory.mktemp("tsa")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tsa(tsa_server: LocalTsa, settings: Any) -> Iterator[LocalTsa]:
    settings.TSA_URLS = [tsa_server.url]
    settings.TSA_CA_FILE = str(tsa_server.ca_file)
    try:
        yield tsa_server
    finally:
        tsa_server.mode = "ok"
