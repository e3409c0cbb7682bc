"""Each app registers its own django-q2 schedules; archive creates them after every migrate
(archive/schedules.py)."""

import pytest

from archive import schedules

NAMES = {
    "ledger checkpoint",
    "archive verification",
    "archive verification, new entries",
    "delivery sweep",
    "backlog alarm",
    "media fetch",
    "lexicon scan",
    "review sampling",
    "chat import resume",
    "export expiry",
    "retention disposition",
    "legal hold refresh",
    "object lock",
    "ledger anchoring",
    "bridge",
    "reply emails",
    "imap poll",
}


def test_it_collects_every_apps_schedules():
    found = schedules.schedules()
    assert set(found) == NAMES
    assert {s["func"].split(".")[0] for s in found.values()} == {
        "archive",
        "messaging",
        "review",
        "imports",
        "exports",
        "retention",
        "bridge",
    }


def test_it_reads_settings_when_it_runs(settings):
    settings.LEDGER_CHECKPOINT_MINUTES = 7
    assert schedules.schedules()["ledger checkpoint"]["minutes"] == 7


def test_it_refuses_a_name_two_apps_schedule(monkeypatch):
    twice = [lambda: {"ledger checkpoint": {}}, lambda: {"ledger checkpoint": {}}]
    monkeypatch.setattr(schedules, "_sources", twice)
    with pytest.raises(ValueError, match="ledger checkpoint"):
        schedules.schedules()
