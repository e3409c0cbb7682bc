"""Configuration mistakes that would weaken the archive, as system checks with stable ids."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from archive import objectstore, privileges
from archive.storage_config import is_s3


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


def worm_problem() -> str | None:
    """Why the records store is not WORM (a bucket with versioning and compliance-mode Object
    Lock, reachable with the credentials given), or None when it is. Asks the bucket."""
    found = objectstore.records().describe()
    if found.worm:
        return None
    problems = found.problems or ["it is not compliance-mode WORM storage"]
    return f"the records store ({found.where}) is not WORM: {'; '.join(problems)}"


@register("archive", deploy=True)
def check_records_store(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.STORAGE_REQUIRE_WORM:
        problem = worm_problem()
        if problem is None:
            return []
        return [
            Error(
                f"STORAGE_REQUIRE_WORM is set and {problem}.",
                hint="`manage.py storage check` shows the bucket's settings; deploy/README.md, "
                "'Object storage (WORM)', says how to create one.",
                id="archive.E003",
            )
        ]
    if settings.LOCAL_RUN or is_s3(settings.STORAGES[objectstore.RECORDS]):
        return []
    return [
        Warning(
            "Records (media files) are kept on this machine's filesystem: nothing stops anyone "
            "with the disk from deleting one, and other nodes cannot read them.",
            hint="Set STORAGE_URL to an S3 bucket with compliance-mode Object Lock and "
            "STORAGE_REQUIRE_WORM=1 (deploy/README.md, 'Object storage (WORM)').",
            id="archive.W002",
        )
    ]


def refuse_to_start_without_worm() -> None:
    """A production process (gunicorn through clientwindow/wsgi.py, `qcluster`) refuses to
    start with STORAGE_REQUIRE_WORM set and a records store that is not WORM: one error that
    names the problem, rather than records written where nothing protects them."""
    if settings.STORAGE_REQUIRE_WORM and (problem := worm_problem()):
        raise ImproperlyConfigured(
            f"Refusing to start: STORAGE_REQUIRE_WORM is set and {problem}. "
            "Run `manage.py storage check` for the details."
        )


# The commands that write records (the worker fetches media, the gateway stores files staff
# send by email); gunicorn is refused in clientwindow/wsgi.py.
SERVER_COMMANDS = {"qcluster", "run_mail_gateway"}


def refuse_to_start_a_server(argv: list[str]) -> None:
    """AppConfig.ready(): refuse a server command (Django runs argv[1]); every other command,
    `migrate`, `check` and `storage` among them, still runs to let the administrator mend."""
    if argv[1:2] and argv[1] in SERVER_COMMANDS:
        refuse_to_start_without_worm()
