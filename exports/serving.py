"""What the portal and the API both do for a person: request an export and stream its file,
each recorded in the access log (and the download sealed) before anything else happens. The
HTML views (views.py) and the API (api.py) call these; neither imports the other."""

from django.http import FileResponse, Http404, HttpRequest

from review.access import record_access
from review.models import AccessEvent

from . import jobs
from .models import Export
from .scope import Scope


def start_export(request: HttpRequest, scope: Scope, fmt: str, *, via: str = "portal") -> Export:
    """Request the export (sealed, queued) and record the request in the access log."""
    export = jobs.request_export(request.user, scope, fmt)  # type: ignore[arg-type]
    detail = {"format": export.format, "scope": scope.to_json(), "via": via}
    record_access(request, AccessEvent.Action.REQUEST_EXPORT, "export", export.pk, detail)
    return export


def download_response(request: HttpRequest, export: Export, *, via: str) -> FileResponse:
    """The file, streamed (the portal's and the API's download): the download is recorded in
    the access log and sealed in the ledger before a byte is sent."""
    path = jobs.file_path(export)
    if path is None:
        raise Http404("This export has no file (not finished, or expired).")
    record_access(
        request,
        AccessEvent.Action.DOWNLOAD_EXPORT,
        "export",
        export.pk,
        {"sha256": export.file_sha256, "size": export.file_size, "via": via},
    )
    jobs.record_download(request.user, export)  # type: ignore[arg-type]
    name = f"clientwindow-{export.format}-{export.pk}-{path.name}"
    response = FileResponse(path.open("rb"), as_attachment=True, filename=name)
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response
