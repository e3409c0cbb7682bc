"""Who may do what in PostgreSQL: the owner migrates, the runtime role only appends to records.

The runtime role (DATABASES["default"]) gets SELECT/INSERT/UPDATE/DELETE on ordinary tables, but
only SELECT and INSERT on every AppendOnlyModel table. Privileges are the safety boundary;
the pgtrigger triggers are a second layer (any role can set `pgtrigger.ignore`, so they never are).
"""

from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import sql

OWNER_ALIAS = "owner"


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


def runtime_role() -> str | None:
    """The runtime role's name, or None when the runtime and owner are one role."""
    runtime = settings.DATABASES[DEFAULT_DB_ALIAS].get("USER") or ""
    owner = settings.DATABASES.get(OWNER_ALIAS, {}).get("USER") or ""
    if not runtime or migration_alias() == DEFAULT_DB_ALIAS or runtime == owner:
        return None
    return str(runtime)


def grant_statements(role: str, append_only: list[str]) -> list[sql.Composed]:
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
    return statements


def grant_runtime_privileges(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """post_migrate: (re)grant the runtime role its privileges; idempotent."""
    role = runtime_role()
    if role is None or using != migration_alias():
        return
    with connections[using].cursor() as cursor:
        for statement in grant_statements(role, append_only_tables()):
            cursor.execute(statement)
