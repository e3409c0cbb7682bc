"""Who may do what in PostgreSQL: the owner migrates, the runtime role only appends to records.

The runtime role (DATABASES["default"]) gets SELECT/INSERT/UPDATE/DELETE on ordinary tables, but
only SELECT and INSERT on every AppendOnlyModel table, and only SELECT on the registries that
migrations write and the owner's SQL trusts (models with RUNTIME_READ_ONLY). Privileges are the
safety boundary; the pgtrigger triggers are a second layer (any role can set `pgtrigger.ignore`,
so they never are).
"""

import logging
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import sql

OWNER_ALIAS = "owner"
# SECURITY DEFINER functions (owned by the owner role, revoked from PUBLIC) the runtime may call:
# registered by the app that owns each one, in its AppConfig.ready() (before any migrate).
RUNTIME_FUNCTIONS: list[str] = []
logger = logging.getLogger(__name__)


def runtime_may_execute(signature: str) -> None:
    """Grant the runtime role EXECUTE on this function after every migrate: its signature as
    the owning app's migration created it, name and argument types, e.g. "f(bigint[], bigint)"."""
    if signature not in RUNTIME_FUNCTIONS:
        RUNTIME_FUNCTIONS.append(signature)


def migration_alias() -> str:
    """The alias that migrates: the owner role when one is configured."""
    return OWNER_ALIAS if OWNER_ALIAS in settings.DATABASES else DEFAULT_DB_ALIAS


class OwnerMigratesRouter:
    """Reads and writes go to the runtime role; only the owner alias runs migrations."""

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == migration_alias()


def append_only_tables() -> list[str]:
    from archive.models import AppendOnlyModel

    return sorted(
        model._meta.db_table
        for model in apps.get_models()
        if issubclass(model, AppendOnlyModel) and model._meta.managed
    )


def extend_only_tables() -> dict[str, tuple[str, ...]]:
    """Tables the runtime role may only insert into and update in the named columns (models with
    RUNTIME_UPDATE_COLUMNS, e.g. retention records, whose triggers allow only lengthening)."""
    found: dict[str, tuple[str, ...]] = {}
    for model in apps.get_models():
        columns = getattr(model, "RUNTIME_UPDATE_COLUMNS", None)
        if columns and model._meta.managed:
            found[model._meta.db_table] = tuple(columns)
    return dict(sorted(found.items()))


def read_only_tables() -> list[str]:
    """Tables the runtime role may only read (models with RUNTIME_READ_ONLY = True): data the
    owner's SQL trusts, e.g. retention's registries of disposable kinds and of the functions
    retention_dispose() calls as the owner. Only migrations write them."""
    return sorted(
        model._meta.db_table
        for model in apps.get_models()
        if getattr(model, "RUNTIME_READ_ONLY", False) and model._meta.managed
    )


def runtime_role() -> str | None:
    """The runtime role's name, or None when the runtime and owner are one role."""
    runtime = settings.DATABASES[DEFAULT_DB_ALIAS].get("USER") or ""
    owner = settings.DATABASES.get(OWNER_ALIAS, {}).get("USER") or ""
    if not runtime or migration_alias() == DEFAULT_DB_ALIAS or runtime == owner:
        return None
    return str(runtime)


def grant_statements(
    role: str,
    append_only: list[str],
    extend_only: dict[str, tuple[str, ...]] | None = None,
    read_only: list[str] | None = None,
    functions: list[str] | None = None,
) -> list[sql.Composed]:
    """The runtime role's grants; `functions` (default: every registered one) to execute."""
    who = sql.Identifier(role)
    statements = [
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
            who
        ),
        sql.SQL(
            "REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {}"
        ).format(who),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(who),
        sql.SQL("REVOKE INSERT, UPDATE, DELETE ON django_migrations FROM {}").format(who),
    ]
    for table in append_only:
        statements.append(
            sql.SQL("REVOKE UPDATE, DELETE ON {} FROM {}").format(sql.Identifier(table), who)
        )
    for function in RUNTIME_FUNCTIONS if functions is None else functions:
        statements.append(
            sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), who)
        )
    for table, columns in (extend_only or {}).items():
        statements += [
            sql.SQL("REVOKE UPDATE, DELETE ON {} FROM {}").format(sql.Identifier(table), who),
            sql.SQL("GRANT UPDATE ({}) ON {} TO {}").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table), who
            ),
        ]
    for table in read_only or []:
        statements.append(
            sql.SQL("REVOKE INSERT, UPDATE, DELETE ON {} FROM {}").format(
                sql.Identifier(table), who
            )
        )
    return statements


def auditor_statements(role: str, append_only: list[str]) -> list[sql.Composed]:
    """Read-only access to the evidence (and the chain head), nothing else."""
    who = sql.Identifier(role)
    tables = sql.SQL(", ").join(sql.Identifier(t) for t in [*append_only, "archive_chainhead"])
    return [
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who),
        sql.SQL("GRANT SELECT ON {} TO {}").format(tables, who),
    ]


def existing_functions(cursor: Any) -> list[str]:
    """The registered runtime functions that exist in the database now."""
    present = []
    for signature in RUNTIME_FUNCTIONS:
        cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [signature])
        if cursor.fetchone()[0]:
            present.append(signature)
    return present


def grant_runtime_privileges(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """post_migrate: (re)grant the runtime and auditor roles their privileges; idempotent."""
    if using != migration_alias():
        return
    statements: list[sql.Composed] = []
    role = runtime_role()
    auditor = settings.DATABASE_AUDITOR_ROLE
    with connections[using].cursor() as cursor:
        # A table or function that a reverse migrate dropped (`migrate archive 0006`) has
        # nothing left to protect: grant on what exists, and the forward migrate grants the rest.
        present = set(connections[using].introspection.table_names(cursor))
        append_only = [table for table in append_only_tables() if table in present]
        if role is not None:
            read_only = [table for table in read_only_tables() if table in present]
            extend_only = {t: c for t, c in extend_only_tables().items() if t in present}
            statements += grant_statements(
                role, append_only, extend_only, read_only, existing_functions(cursor)
            )
        if auditor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [auditor])
            if cursor.fetchone():
                statements += auditor_statements(auditor, append_only)
            else:
                logger.warning("DATABASE_AUDITOR_ROLE %s does not exist; not granted", auditor)
        for statement in statements:
            cursor.execute(statement)
