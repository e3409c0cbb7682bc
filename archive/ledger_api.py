"""The read API monitors follow: `/ledger/checkpoint` and `/ledger/tile/…` (C2SP tlog-tiles).

For machines, not people: no login, no session, no cookie, no CSRF (GET and HEAD only, other
methods 405). LEDGER_API_ACCESS decides who may read: `off` answers 404 everywhere, as if the
API were absent; `public` anyone; `token` whoever sends `Authorization: Bearer <token>` with
one of LEDGER_API_TOKENS. Only signed notes and hashes leave here, never an envelope or content.
"""

import functools
from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from archive import checkpoints, tiles, witness

View = Callable[..., HttpResponse]
TEXT = "text/plain; charset=utf-8"
SAFE_METHODS = ("GET", "HEAD")
MUTABLE = "no-cache"  # the checkpoint, and every refusal: a 404 tile may exist after the next one
YEAR = 365 * 24 * 3600


def _text(body: str, status: int = 200) -> HttpResponse:
    response = HttpResponse(body, content_type=TEXT, status=status)
    response["Cache-Control"] = MUTABLE
    return response


def api_view(view: View) -> View:
    """Access (off → 404, token → 401 without a good one), then GET/HEAD only."""

    @csrf_exempt  # no writes here: a POST is told 405, not a CSRF 403
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        access = settings.LEDGER_API_ACCESS
        if access not in ("public", "token"):  # off, or a mistake archive.E007 names
            raise Http404
        if access == "token" and not tiles.token_accepted(request.headers.get("Authorization", "")):
            response = _text("Reading this ledger needs a bearer token.\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="ledger"'
            return response
        if request.method not in SAFE_METHODS:
            response = _text("This ledger is read only: use GET or HEAD.\n", status=405)
            response["Allow"] = ", ".join(SAFE_METHODS)
            return response
        return view(request, *args, **kwargs)

    wrapped.sessionless = True  # type: ignore[attr-defined]  # access/sessions.py: no session
    return wrapped


@api_view
def index(request: HttpRequest) -> HttpResponse:
    """What a monitor needs to follow the ledger: origin, verifier keys, endpoints."""
    base = request.build_absolute_uri(reverse("ledger:index"))
    keys = [checkpoints.verifier_key_text(), *settings.LEDGER_PREVIOUS_VERIFIER_KEYS]
    lines = [
        "ClientWindow ledger: a C2SP tlog-tiles log of hashes (no entries, no content)",
        f"origin: {settings.LEDGER_ORIGIN}",
        *(f"verifier key: {key}" for key in keys),
        f"checkpoint: {base}checkpoint",
        f"tiles: {base}tile/<L>/<N>[.p/<W>]",
        "entry bundles: not served",
    ]
    return _text("\n".join(lines) + "\n")


@api_view
def checkpoint(request: HttpRequest) -> HttpResponse:
    """The latest signed checkpoint note, with the witnesses' cosignatures kept so far (still one
    signed note: a client checks the signatures of the keys it trusts and ignores the rest)."""
    latest = tiles.latest_checkpoint()
    if latest is None:
        return _text("No checkpoint has been signed yet.\n", status=404)
    return _text(witness.cosigned_note(latest))


@api_view
def tile(request: HttpRequest, path: str) -> HttpResponse:
    """A tile's concatenated hashes; 400 for a path the spec forbids, 404 for one not served."""
    if path == "entries" or path.startswith("entries/"):
        return _text("Entry bundles are not served: this ledger publishes hashes only.\n", 404)
    try:
        hashes = tiles.read_tile(tiles.parse_tile_path(path))
    except tiles.TilePathError as error:
        return _text(f"Malformed tile path: {error}.\n", status=400)
    except tiles.TileUnavailable as error:
        return _text(f"Not served: {error}.\n", status=404)
    except tiles.TileMissing as error:
        return _text(f"The archive is damaged: {error}; run verify_archive.\n", status=503)
    response = HttpResponse(hashes, content_type="application/octet-stream")
    # A tile never changes. With tokens, shared caches must not hand it to others.
    scope = "private" if settings.LEDGER_API_ACCESS == "token" else "public"
    response["Cache-Control"] = f"{scope}, max-age={YEAR}, immutable"
    return response
