"""Django's PostgreSQL backend, with a health check that sends nothing to the server.

With CONN_HEALTH_CHECKS, Django checks a connection kept from an earlier request before the
request's first statement: `is_usable()`, a `SELECT 1` round trip under every page, which its
query log does not show (a search page's fourth round trip, its floor's third). Here the check
asks libpq instead: the connection is usable when libpq has it open and idle (or in a
transaction that has not failed) and the server has said nothing since its last answer. A
server that ends a session (a restart, pg_terminate_backend, an idle timeout) says so before it
closes the socket (FATAL, then end of file): that is input waiting on an idle connection, seen
here without a read, and the connection is given up and opened again, as Django does after a
failed `SELECT 1`. What neither check sees is the same: a peer gone without closing (a network cut),
which the request's first statement meets instead of the check's.

Settings name it as the ENGINE of every database (clientwindow/settings.py)."""

import select

from django.db.backends.postgresql import base
from psycopg import pq

# a transaction that has failed answers nothing but errors until it is rolled back; a command
# under way is not ours to interrupt: Django's SELECT 1 would fail on either
_READY = (pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS)


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is None:
            return False
        pgconn = self.connection.pgconn
        if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status not in _READY:
            return False
        waiting = select.poll()
        waiting.register(pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
        # anything said unasked: the end of the session (a FATAL, then end of file), or a
        # notice, which the portal's sessions never get between requests; either way the
        # connection is given up and opened again, a few ms once
        return not waiting.poll(0)
