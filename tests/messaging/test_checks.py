"""messaging.E001: an installed app's required capture hook is missing (messaging/checks.py)."""

from messaging import checks, hooks


def test_it_passes_with_every_app_registered():
    assert checks.capture_hooks() == []


def test_it_fails_when_retentions_sealing_hook_is_missing(monkeypatch):
    monkeypatch.setitem(hooks._registry, "sealed", [])
    (error,) = checks.capture_hooks()
    assert error.id == "messaging.E001"
    assert "retention needs a 'sealed' capture hook" in error.msg


def test_it_does_not_count_another_apps_hook(monkeypatch):
    monkeypatch.setitem(hooks._registry, "attached", [checks.capture_hooks])
    assert [e.id for e in checks.capture_hooks()] == ["messaging.E001"]
