"""The project's django-q2 schedules, kept in line with settings after every migrate. Each app's
AppConfig lists its own in a `schedules()` method and registers it in ready() (archive's too)."""

from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django_q.models import Schedule

from archive.privileges import migration_alias

Schedules = dict[str, dict[str, Any]]  # name → {"func", "schedule_type", "minutes"?}
_sources: list[Callable[[], Schedules]] = []


def register(source: Callable[[], Schedules]) -> None:
    """AppConfig.ready(): an app's schedules. `source` is called after every migrate, so it
    reads settings then; the task paths it names are the app's own."""
    if source not in _sources:  # ready() run twice registers once
        _sources.append(source)


def schedules() -> Schedules:
    """name → (function, interval), every registered app's; a name is one app's only."""
    found: Schedules = {}
    for source in _sources:
        for name, schedule in source().items():
            if name in found:
                raise ValueError(f"two apps schedule {name!r}")
            found[name] = schedule
    return found


def ensure_schedules(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """post_migrate: create or update every schedule, repeating forever."""
    if using != migration_alias():
        return
    for name, defaults in schedules().items():
        Schedule.objects.using(using).update_or_create(
            name=name, defaults={**defaults, "repeats": -1}
        )
