"""Command-line plumbing the retention commands share: who acts, how dates and periods are read,
how the domain's refusals become CommandErrors, and how facts are printed.

The leading underscore keeps Django from listing this module as a command.
"""

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import CommandError

from retention.models import Disposition

# A longer period would put retain_until past the year 9999, which Python's datetime (and so
# retention/assign.py, in every sealing transaction) cannot represent.
MAX_DAYS = 36_525  # 100 years


def acting_user(username: str | None) -> User | None:
    """--user USERNAME; without it the ledger records the action as "system"."""
    return None if username is None else existing_user(username)


def existing_user(username: str) -> User:
    users = get_user_model()
    try:
        user: User = users.objects.get(**{users.USERNAME_FIELD: username})
    except users.DoesNotExist:
        raise CommandError(f"no user {username!r}") from None
    if not user.is_active:
        raise CommandError(f"the user {username!r} is inactive")
    return user


def day(text: str) -> date:
    """An argparse type: a calendar day written YYYY-MM-DD."""
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def period(text: str) -> int:
    """An argparse type: a retention period in whole days."""
    try:
        days = int(text)
    except ValueError:
        days = -1
    if not 0 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days from 0 to {MAX_DAYS}")
    return days


@contextmanager
def refused() -> Iterator[None]:
    """Turn the domain's refusals into a CommandError that says what is wrong."""
    try:
        yield
    except ValidationError as problem:
        if hasattr(problem, "error_dict"):
            raise CommandError(
                "; ".join(
                    f"{name}: {' '.join(errors)}" for name, errors in problem.message_dict.items()
                )
            ) from None
        raise CommandError(" ".join(problem.messages)) from None
    except PermissionDenied as problem:
        raise CommandError(str(problem)) from None


def when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def flat(value: Any) -> str:
    """A value on one line, without tabs or line breaks; "-" when empty."""
    return " ".join(str(value).split()) or "-"


def row(*values: Any) -> str:
    """A list's line: tab-separated cells."""
    return "\t".join(flat(value) for value in values)


def username(user: User | None) -> str:
    return user.get_username() if user is not None else "system"


def outcome(disposition: Disposition) -> str:
    """What became of a planned disposition; a failure is a CommandError carrying its error."""
    state = disposition.state
    if state == Disposition.State.FAILED:
        raise CommandError(
            f"disposition {disposition.pk} failed after {disposition.disposed} records disposed: "
            f"{disposition.error}"
        )
    if state == Disposition.State.DONE:
        return (
            f"disposition {disposition.pk} done: {disposition.disposed} records disposed, "
            f"{disposition.media_deleted} media files"
        )
    if state == Disposition.State.AWAITING_APPROVAL:
        return (
            f"disposition {disposition.pk} waiting for a second administrator's approval: "
            f"planned {disposition.planned}"
        )
    # RUNNING: the worker claimed it first (see approve_disposition); REJECTED: someone said no.
    return f"disposition {disposition.pk} {disposition.get_state_display()}"
