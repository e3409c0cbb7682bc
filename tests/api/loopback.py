"""The portal on a real socket on 127.0.0.1, inside the running test's transaction.

pytest-django's `live_server` serves from other threads with connections of their own, so it
sees only committed rows: a test would have to commit its world and then empty the archive's
append-only tables, as tests/e2e does. Here the server's one thread uses the test's own database
connection instead (what Django's LiveServerTestCase does for in-memory SQLite): it sees the
`world` fixture's rows, and whatever the requests write is rolled back with the test, so state-
changing operations (holds, releases, exports) cannot leave anything behind for the next run.

One thread, one request at a time (Django's server closes each connection when it is not a
threading server), so the shared connection is never used by two threads at once.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Thousands of generated requests: pytest shows failures, not the access log."""


@contextmanager
def loopback_server() -> Iterator[str]:
    """Serve the portal on 127.0.0.1 (a free port) for the block; yields its base URL."""
    connection = connections[DEFAULT_DB_ALIAS]
    connection.ensure_connection()
    server = WSGIServer(("127.0.0.1", 0), QuietHandler, ipv6=False)
    server.set_app(WSGIHandler())

    def serve() -> None:
        connections[DEFAULT_DB_ALIAS] = connection
        server.serve_forever(poll_interval=0.05)

    # Django closes a connection in a transaction at each request's start and end (it would
    # end the test's); its test client disconnects the same receiver.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    connection.inc_thread_sharing()
    thread = threading.Thread(target=serve, name="loopback-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        connection.dec_thread_sharing()
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
