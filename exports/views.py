"""The portal's exports: request one (from a transcript, a search, or a participant's number),
watch its progress, cancel or retry it, and download the result.

Each view: access helper → form → one domain call (exports/jobs.py) → render or redirect.
Requests and downloads are recorded as access events, and sealed in the ledger by the jobs.
"""

from django.contrib import messages as notices
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from access.roles import role_required
from access.sessions import recent_authentication_required

from . import jobs
from .access import export_for_user, exports_for_user, require_export
from .forms import ExportForm
from .serving import download_response, start_export

LIST_SIZE = 100


@role_required
@require_GET
def export_list(request: HttpRequest) -> HttpResponse:
    exports = exports_for_user(request)[:LIST_SIZE]
    return render(request, "exports/list.html", {"exports": exports, "form": ExportForm()})


@role_required
@require_POST
@recent_authentication_required
def create(request: HttpRequest) -> HttpResponse:
    require_export(request)
    form = ExportForm(request.POST, user=request.user)
    if not form.is_valid():
        exports = exports_for_user(request)[:LIST_SIZE]
        context = {"exports": exports, "form": form}
        return render(request, "exports/list.html", context, status=400)
    export = start_export(request, form.cleaned_data["scope_value"], form.cleaned_data["format"])
    notices.success(request, f"Export requested: {export}.")
    return redirect("exports:detail", pk=export.pk)


@role_required
@require_GET
def detail(request: HttpRequest, pk: str) -> HttpResponse:
    export = export_for_user(request, pk)
    template = "exports/detail.html#progress" if request.htmx else "exports/detail.html"  # type: ignore[attr-defined]
    return render(request, template, {"export": export})


@role_required
@require_POST
def cancel(request: HttpRequest, pk: str) -> HttpResponse:
    export = export_for_user(request, pk)
    if jobs.cancel(export):
        notices.success(request, "The export will stop.")
    else:
        notices.error(request, "Only a pending or running export can be cancelled.")
    return redirect("exports:detail", pk=export.pk)


@role_required
@require_POST
def retry(request: HttpRequest, pk: str) -> HttpResponse:
    export = export_for_user(request, pk)
    if jobs.retry(export):
        notices.success(request, "The export will run again.")
    else:
        notices.error(request, "Only a failed or cancelled export can be retried.")
    return redirect("exports:detail", pk=export.pk)


@role_required
@require_GET
def download(request: HttpRequest, pk: str) -> HttpResponseBase:
    return download_response(request, export_for_user(request, pk), via="portal")
