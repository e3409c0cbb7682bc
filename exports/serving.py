"""What the portal and the API both do for a person: request an export and stream its file,
each recorded in the access log (and the download sealed) before anything else happens. The
HTML views (views.py) and the API (api.py) call these; neither imports the other.

Downloads stream through the app from the exports store (archive/objectstore.py), rather than
redirecting to a presigned bucket URL, because:

- every download passes the access check and leaves its access-log line and sealed
  `export.downloaded` entry at the moment of the download (a presigned URL could be replayed or
  passed on until it expires, unseen);
- the bucket need not be reachable from browsers, only from the web nodes;
- the bytes are checked against the SHA-256 sealed when the export finished, as they stream.

The check holds back one chunk (1 MiB, objectstore.CHUNK): the last chunk is sent only once the
whole file's digest matches. On a mismatch the last chunk is withheld, an ERROR is logged (ids
only), the export's `error` says so (the detail page shows it), and the response iterator raises
`Corrupt`, so the server cuts the connection short of its Content-Length: the client never
receives a complete file that differs from the sealed one. Memory per download: two chunks.
"""

import hashlib
import logging
import mimetypes
from collections.abc import Iterator
from pathlib import PurePosixPath

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.http import content_disposition_header

from archive import objectstore
from archive.objectstore import Corrupt, Missing, StoreError
from review.access import record_access
from review.models import AccessEvent

from . import jobs
from .models import Export
from .scope import Scope

logger = logging.getLogger(__name__)


def start_export(request: HttpRequest, scope: Scope, fmt: str, *, via: str = "portal") -> Export:
    """Request the export (sealed, queued) and record the request in the access log."""
    export = jobs.request_export(request.user, scope, fmt)  # type: ignore[arg-type]
    detail = {"format": export.format, "scope": scope.to_json(), "via": via}
    record_access(request, AccessEvent.Action.REQUEST_EXPORT, "export", export.pk, detail)
    return export


def download_response(request: HttpRequest, export: Export, *, via: str) -> HttpResponseBase:
    """The file, streamed from the exports store (the portal's and the API's download): the
    download is recorded in the access log and sealed in the ledger before a byte is sent."""
    stored = jobs.stored_name(export)
    if stored is None:
        raise Http404("This export has no file (not finished, or expired).")
    chunks = objectstore.exports().stream(stored)
    try:
        first = next(chunks, b"")  # opens the file or object: a missing one is a 404
    except Missing as missing:
        raise Http404("This export's file is no longer stored.") from missing
    except StoreError as problem:
        logger.error("export %s: the exports store cannot be read: %s", export.pk, problem)
        return HttpResponse(
            "The exports store cannot be reached; try again shortly.\n",
            status=503,
            content_type="text/plain",
        )
    record_access(
        request,
        AccessEvent.Action.DOWNLOAD_EXPORT,
        "export",
        export.pk,
        {"sha256": export.file_sha256, "size": export.file_size, "via": via},
    )
    jobs.record_download(request.user, export)  # type: ignore[arg-type]
    base = PurePosixPath(stored).name
    name = f"clientwindow-{export.format}-{export.pk}-{base}"
    response = StreamingHttpResponse(
        _verified(export, first, chunks),
        content_type=mimetypes.guess_type(base)[0] or "application/octet-stream",
    )
    response["Content-Length"] = str(export.file_size)
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


def _verified(export: Export, first: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks, one behind: the last is yielded only if the whole matches export.file_sha256."""
    digest = hashlib.sha256(first)
    held = first
    try:
        for chunk in chunks:
            yield held
            digest.update(chunk)
            held = chunk
    finally:
        close = getattr(chunks, "close", None)  # the store's generator: closes file or body
        if close is not None:
            close()
    if digest.hexdigest() != export.file_sha256:
        logger.error("export %s: the stored file does not match its sealed SHA-256", export.pk)
        Export.objects.filter(pk=export.pk).update(
            error=f"The stored file did not match its sealed SHA-256 at a download on "
            f"{timezone.now():%Y-%m-%d %H:%M} UTC, and was not served whole. Request the export "
            "again."
        )
        raise Corrupt(f"export {export.pk}: the stored file does not match its sealed SHA-256")
    yield held
