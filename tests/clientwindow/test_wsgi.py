"""The web process's entry point: with STORAGE_REQUIRE_WORM, gunicorn refuses to start on a
records store that is not WORM; without it (`make run`), it starts on the filesystem."""

import os
import subprocess
import sys

from django.conf import settings


def import_wsgi(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import clientwindow.wsgi"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "CLIENTWINDOW_LOCAL": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_it_refuses_to_serve_from_a_records_store_that_is_not_worm(tmp_path):
    result = import_wsgi(STORAGE_REQUIRE_WORM="1", MEDIA_ROOT=str(tmp_path))
    assert result.returncode != 0
    assert "ImproperlyConfigured: Refusing to start: STORAGE_REQUIRE_WORM is set and the " in (
        result.stderr
    )


def test_it_starts_on_the_filesystem_without_the_requirement(tmp_path):
    result = import_wsgi(STORAGE_REQUIRE_WORM="0", MEDIA_ROOT=str(tmp_path))
    assert result.returncode == 0, result.stderr
