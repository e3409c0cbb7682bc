"""Settings fail closed: no DEBUG and no default secret key outside local runs."""

import os
import subprocess
import sys

import pytest

SHOW = "from django.conf import settings; print(settings.DEBUG, settings.SESSION_COOKIE_SECURE)"


def run_settings(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CLIENTWINDOW_", "DJANGO_"))}
    clean.update(env, DJANGO_SETTINGS_MODULE="clientwindow.settings")
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {SHOW}"],
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )


def test_it_requires_a_secret_key_outside_local_runs():
    result = run_settings(DATABASE_URL="postgres://u@h/db")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_it_turns_debug_off_and_cookies_secure_in_production():
    result = run_settings(DATABASE_URL="postgres://u@h/db", DJANGO_SECRET_KEY="x" * 50)
    assert result.stdout.split() == ["False", "True"]


def test_it_ignores_a_debug_request_outside_local_runs():
    result = run_settings(
        DATABASE_URL="postgres://u@h/db", DJANGO_SECRET_KEY="x" * 50, CLIENTWINDOW_DEBUG="1"
    )
    assert result.stdout.split()[0] == "False"


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_it_explains_a_malformed_boolean(value):
    result = run_settings(CLIENTWINDOW_LOCAL=value)
    assert "CLIENTWINDOW_LOCAL must be a boolean" in result.stderr


@pytest.mark.django_db
def test_the_application_connections_run_without_jit():
    """JIT compiled for a second before a 0.6 s search statement at 10M (docs/SCALE.md §7d)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)


def test_it_reads_and_writes_british_dates_without_translation_machinery():
    """USE_I18N is off (every catalog for en-gb says what the source says, and the machinery
    cost every page ~0.75 ms, docs/SCALE.md §7v); the firm's formats are still en-gb's: a date
    typed day first is read day first, and shown as "5 Dec 2026"."""
    from datetime import date

    from django import forms
    from django.conf import settings
    from django.template import Context, Template
    from django.utils import translation

    assert settings.USE_I18N is False and translation.get_language() == "en-gb"
    assert forms.DateField().clean("05/12/2026") == date(2026, 12, 5)
    shown = Template("{{ day|date }}").render(Context({"day": date(2026, 12, 5)}))
    assert shown == "5 Dec 2026"
