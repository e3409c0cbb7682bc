"""Statements PostgreSQL plans once per database session, not at every execution.

A page's fixed statements cost as much to plan as to run: the search page's hits (25 messages
with their conversations, clients and channels) planned in 0.38-0.51 ms and ran in 0.38 at 10k;
the session's user with its roles planned in 0.13-0.20 ms and ran in 0.04. PREPAREd once in a
database session and EXECUTEd after that, each execution is planned at most as a custom plan
until PostgreSQL has seen (after five) that a generic one costs no more, then not at all
(docs/SCALE.md §7w).

Only for statements whose best plan does not depend on their parameters' values: lookups by
key, an array of ids. A search's own statement, whose plan depends on how common its words are,
is planned each time.

Through Django's cursor, so that Django sees each of them as any other statement (the query log,
CaptureQueriesContext, execute wrappers), and as one: the first execution in a session sends
PREPARE and EXECUTE in the same round trip. The names are kept per connection to PostgreSQL: a
new one (DATABASE_CONN_MAX_AGE, a reconnection) prepares again. PREPARE is not undone by a
rollback; a statement whose execution failed is prepared again under a new name, since whether
its PREPARE took effect is not known, or the statement may be what failed. Not for a pooler that
hands one client's session to another between transactions (PgBouncer in transaction mode): a
prepared statement belongs to a database session."""

import functools
import hashlib
import itertools
import re
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import DatabaseError
from django.db.backends.utils import CursorWrapper

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s")


class _Session:
    """What one connection to PostgreSQL has prepared: its statements' names by their SQL."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.made = itertools.count(1)


_SESSIONS: "weakref.WeakKeyDictionary[Any, _Session]" = weakref.WeakKeyDictionary()
# Every name given, with its SQL (`statement`): the same few statements a process, their names
# the same in every session (a digest of the SQL and a count), a new one only after a failure.
_SQL_OF: dict[str, str] = {}
_EXECUTE = re.compile(r"EXECUTE (cw_\w+)\b")


def execute(
    cursor: CursorWrapper, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
) -> None:
    """cursor.execute(sql, params), with `sql` prepared in the cursor's database session the
    first time and executed by name after that. `sql` has psycopg's placeholders, all of one
    kind (%s, or %(name)s), and no "%%"."""
    numbered, values = libpq_form(sql, params)
    session = _SESSIONS.setdefault(cursor.db.connection, _Session())
    name = session.names.get(sql)
    if name is not None:
        try:
            cursor.execute(_call(name, values), values)
        except DatabaseError:
            # the next execution prepares it again under a new name: a prepared statement can
            # fail where its SQL would not (a column's type changed since: "cached plan must
            # not change result type"; gone: DEALLOCATE, DISCARD ALL)
            del session.names[sql]
            raise
        return
    digest = hashlib.sha256(sql.encode()).hexdigest()[:16]
    name = f"cw_{digest}_{next(session.made)}"
    _SQL_OF[name] = sql
    # one round trip, one statement to Django; the rows are EXECUTE's, the second result
    cursor.execute(f"PREPARE {name} AS {numbered}\n; {_call(name, values)}", values)
    cursor.nextset()
    session.names[sql] = name


def libpq_form(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> tuple[str, list[Any]]:
    """`sql` with libpq's placeholders ($1, $2, ...) for psycopg's (all of one kind: %s, or
    %(name)s, a name keeping its number), and `params` in their order. Also archive.inflight's."""
    numbered, names = _numbered(sql)
    if isinstance(params, Mapping):
        return numbered, [params[name] for name in names]
    if any(names):
        raise ValueError("placeholders of one kind: %s or %(name)s")
    if len(params) != len(names):
        raise ValueError(f"{len(names)} placeholders, {len(params)} parameters")
    return numbered, list(params)


@functools.lru_cache(maxsize=256)
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """`sql` numbered, and its placeholders' names in order ("" for %s): a page's few fixed
    statements, parsed once a process rather than at every execution."""
    if "%%" in sql:
        raise ValueError("SQL with libpq's placeholders may not hold psycopg's '%%'")
    names: list[str] = []
    return _PLACEHOLDER.sub(lambda match: _number(match, names), sql), tuple(names)


def _number(match: re.Match[str], names: list[str]) -> str:
    """$n for a placeholder: a named one keeps the number of its first occurrence."""
    name = match.group(1) or ""
    if name and name in names:
        return f"${names.index(name) + 1}"
    names.append(name)
    return f"${len(names)}"


def _call(name: str, values: list[Any]) -> str:
    return f"EXECUTE {name} ({', '.join(['%s'] * len(values))})" if values else f"EXECUTE {name}"


def statement(sent: str) -> str:
    """What a statement as Django logged it asks: for an EXECUTE of a statement prepared here,
    the SQL given to `execute` (its placeholders, not its values); any other as it was sent
    (a first execution's PREPARE holds its SQL already). For tests and diagnosis: what a page
    reads, from the statements it sent."""
    match = _EXECUTE.match(sent)
    return _SQL_OF.get(match.group(1), sent) if match else sent
