"""A statement sent now and answered later: its round trip overlapped with the work that follows.

A search page's access event is a one-row INSERT that commits on its own (autocommit), so the
page waited for PostgreSQL to write it and flush its WAL (0.3-0.4 ms at 10k, more at the
flush's tail) before it began its template (1.5 ms). Sent before the template and answered
after it, the two overlap; the response still cannot leave before the event is committed, since
`sent` reads the answer when its block ends, and raises if the statement failed.

The block must not use the database: the connection is busy with the statement until the
block ends (a statement there fails: libpq refuses a second command while one is in flight).

Below Django's cursor, through psycopg's libpq connection: Django's execute wrappers do not see
the statement, but its query log does (DEBUG, CaptureQueriesContext), with the time from sending
to the answer."""

import logging
import selectors
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import connection
from psycopg import Error, OperationalError, errors, pq

from archive import prepared

logger = logging.getLogger(__name__)


@contextmanager
def sent(sql: str, params: Sequence[str | None]) -> Iterator[None]:
    """Send `sql` (psycopg's %s placeholders; each parameter as text, or None for NULL) on the
    default connection and return; when the block ends, wait for its answer and raise Django's
    DatabaseError if it failed. If the block raises, the answer is still read before its
    exception goes on, so the connection is left free either way.

    In autocommit the statement is a transaction of its own, committed before the block's end
    returns; in a transaction (an atomic block, a test's) it is one statement of it, whose
    end is the caller's. A transaction that has sent nothing yet has not begun either (psycopg
    sends BEGIN with its first statement): there it runs at once through Django's cursor,
    which begins it, and the block overlaps nothing."""
    numbered, _ = prepared.libpq_form(sql, params)
    connection.close_if_health_check_failed()  # as Django's cursor begins
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    pgconn = connection.connection.pgconn
    if not connection.get_autocommit() and pgconn.transaction_status == pq.TransactionStatus.IDLE:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        yield
        return
    values = [None if p is None else p.encode() for p in params]
    started = time.perf_counter()
    with connection.wrap_database_errors:  # a connection lost since: Django's OperationalError
        pgconn.send_query_params(numbered.encode(), values)
        _flush(pgconn)
    try:
        yield
    except BaseException:
        failure = _answer(pgconn, sql, params, started)
        if failure is not None:  # the block's own exception goes on; this one is logged
            logger.error("a statement sent before a failure failed too: %s", failure)
        raise
    failure = _answer(pgconn, sql, params, started)
    if failure is not None:
        with connection.wrap_database_errors:  # as Django's cursor raises it
            raise failure


def _flush(pgconn: pq.abc.PGconn) -> None:
    """The whole statement on its way: a non-blocking connection (psycopg's) may have kept part
    of it in libpq's buffer."""
    if pgconn.flush() == 0:
        return
    with selectors.DefaultSelector() as selector:
        selector.register(pgconn.socket, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while pgconn.flush() != 0:
            if any(events & selectors.EVENT_READ for _, events in selector.select()):
                pgconn.consume_input()


def _answer(
    pgconn: pq.abc.PGconn, sql: str, params: Sequence[str | None], started: float
) -> Error | None:
    """Every result of the statement (PQgetResult blocks until each is in), logged in Django's
    query log when it keeps one, and the error if it failed."""
    failure: Error | None = None
    while (result := pgconn.get_result()) is not None:
        if result.status == pq.ExecStatus.FATAL_ERROR and failure is None:
            failure = errors.error_from_result(result, encoding=connection.connection.info.encoding)
    if failure is None and pgconn.status != pq.ConnStatus.OK:
        failure = OperationalError(pgconn.get_error_message())
    if connection.queries_logged:
        spent = time.perf_counter() - started
        connection.queries_log.append({"sql": f"{sql} -- {list(params)}", "time": f"{spent:.3f}"})
    return failure
