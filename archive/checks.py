"""Configuration mistakes that would weaken the archive, as system checks with stable ids."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

from archive import privileges


@register("archive", deploy=True)
def check_separate_roles(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if privileges.runtime_role() is not None:
        return []
    return [
        Warning(
            "The runtime database role is also the owner: PostgreSQL privileges cannot keep "
            "the ledger append-only, only triggers do.",
            hint="Set DATABASE_URL to the runtime role and DATABASE_OWNER_URL to the owner "
            "(deploy/README.md, 'Database roles').",
            id="archive.W001",
        )
    ]


@register("archive", deploy=True)
def check_signing_key(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    path = settings.LEDGER_SIGNING_KEY_FILE
    if settings.LEDGER_SIGNING_KEY_AUTOCREATE or path.is_file():
        return []
    return [
        Error(
            f"The checkpoint signing key file {path} does not exist.",
            hint="Create one with `manage.py create_signing_key PATH` and point "
            "LEDGER_SIGNING_KEY_FILE at it.",
            id="archive.E002",
        )
    ]
