"""Run the test IdP: `python -m tests.oidc_provider.serve '<setup JSON>'`, with
DJANGO_SETTINGS_MODULE=tests.oidc_provider.settings and OIDC_PROVIDER_DIR set.

Migrates its sqlite database, creates the confidential client and the users the setup names,
listens on a free port of 127.0.0.1 and prints that port on its first line of output.
"""

import json
import sys
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import django


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def prepare(setup: dict[str, Any]) -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    for username, password in setup["users"].items():
        User.objects.create_user(username, password=password)
    Application.objects.create(
        name="ClientWindow",
        client_id=setup["client_id"],
        client_secret=setup["client_secret"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(setup["redirect_uris"]),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )


def main() -> None:
    django.setup()
    prepare(json.loads(sys.argv[1]))
    from django.core.wsgi import get_wsgi_application

    server = make_server(
        "127.0.0.1", 0, get_wsgi_application(), server_class=Server, handler_class=QuietHandler
    )
    print(server.server_port, flush=True)  # noqa: T201 (the port, for fixtures.py)
    server.serve_forever()


if __name__ == "__main__":
    main()
