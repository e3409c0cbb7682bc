"""The portal's imports of phone "Export chat" files: upload one, check its preview and map its
authors, watch the import, cancel it, and download its report.

Each view: access helper (imports/access.py) → form → one call of imports/pipeline.py → render
or redirect. Uploads, views of a job (its preview shows the file's messages) and report
downloads are recorded as access events; the pipeline seals the upload and the import itself.
"""

import csv
from collections.abc import Iterable, Iterator

from django.contrib import messages as notices
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from access.roles import role_required
from access.spreadsheets import neutralise
from review.access import record_access
from review.models import AccessEvent

from . import pipeline
from .access import job_for_user, jobs_for_user, participants_for_mapping, require_import
from .forms import ConfirmForm, UploadForm
from .models import ImportJob

LIST_SIZE = 100
WARNINGS_SHOWN = 100  # the rest are in the report CSV
# Access-log actions of this app (review.models.AccessEvent.action)
UPLOAD, VIEW, REPORT = (
    AccessEvent.Action.UPLOAD_CHAT_EXPORT,
    AccessEvent.Action.VIEW_IMPORT,
    AccessEvent.Action.DOWNLOAD_IMPORT_REPORT,
)
PREVIEW_STATES = (ImportJob.State.READY, ImportJob.State.NEEDS_DATE_ORDER)


@role_required
@require_GET
def import_list(request: HttpRequest) -> HttpResponse:
    jobs = jobs_for_user(request)[:LIST_SIZE]
    return render(request, "imports/list.html", {"jobs": jobs})


@role_required
@require_http_methods(["GET", "POST"])
def create(request: HttpRequest) -> HttpResponse:
    require_import(request)
    if request.method != "POST":
        return _upload_page(request, UploadForm())
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _upload_page(request, form, status=400)
    data = form.cleaned_data
    try:
        job = pipeline.upload(
            channel=data["channel"],
            custodian=data["custodian"],
            time_zone=data["time_zone"],
            file_name=data["file"].name,
            stream=data["file"],
            uploaded_by=request.user,  # type: ignore[arg-type]
        )
    except pipeline.ImportRefused as refused:
        form.add_error(None, str(refused))
        return _upload_page(request, form, status=400)
    detail = {"file_name": job.export.file_name, "sha256": job.export.sha256}
    record_access(request, UPLOAD, "import", job.pk, detail)
    notices.success(request, f"{job.export.file_name} is stored and sealed; it is being read.")
    return redirect("imports:detail", pk=job.pk)


def _upload_page(request: HttpRequest, form: UploadForm, status: int = 200) -> HttpResponse:
    return render(request, "imports/new.html", {"form": form}, status=status)


@role_required
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = job_for_user(request, pk)
    if request.htmx:  # type: ignore[attr-defined]
        # the progress note polls while the job works; once it stops, the whole page changes
        if job.active:
            return render(request, "imports/detail.html#progress", {"job": job})
        return HttpResponseClientRefresh()
    record_access(request, VIEW, "import", job.pk)
    form = None
    if job.state in PREVIEW_STATES:
        form = ConfirmForm(job=job, participants=participants_for_mapping(request, job))
    return _job_page(request, job, form)


def _job_page(
    request: HttpRequest, job: ImportJob, form: ConfirmForm | None, status: int = 200
) -> HttpResponse:
    context = {
        "job": job,
        "form": form,
        "problems": job.problems.all()[:WARNINGS_SHOWN],
        "more_problems": max(0, job.problems.count() - WARNINGS_SHOWN),
    }
    return render(request, "imports/detail.html", context, status=status)


@role_required
@require_POST
def confirm(request: HttpRequest, pk: int) -> HttpResponse:
    job = job_for_user(request, pk)
    if job.state not in PREVIEW_STATES:
        notices.error(request, f"This import is {job.get_state_display()}: nothing to confirm.")
        return redirect("imports:detail", pk=job.pk)
    participants = participants_for_mapping(request, job)
    form = ConfirmForm(request.POST, job=job, participants=participants)
    if not form.is_valid():
        return _job_page(request, job, form, status=400)
    data = form.cleaned_data
    try:
        pipeline.confirm(
            job,
            date_order=data["date_order"],
            mapping=data["mapping"],
            chat_name=data["chat_name"],
            one_to_one=data["one_to_one"],
            user=request.user,  # type: ignore[arg-type]
        )
    except ValidationError as refused:
        form.add_error(None, refused)
        return _job_page(request, job, form, status=400)
    notices.success(request, "The import is sealed as started and runs in the background.")
    return redirect("imports:detail", pk=job.pk)


@role_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = pipeline.cancel(job_for_user(request, pk), request.user)  # type: ignore[arg-type]
    if job.state == ImportJob.State.CANCELLED and not job.started_entry:
        notices.success(request, "Not imported. The upload stays stored and sealed.")
    elif job.state in (ImportJob.State.CANCELLED, ImportJob.State.CANCELLING):
        notices.success(request, "The import will stop; what was sealed stays in the archive.")
    else:
        notices.error(request, f"This import is {job.get_state_display()}: it cannot be cancelled.")
    return redirect("imports:detail", pk=job.pk)


@role_required
@require_GET
def report(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    job = job_for_user(request, pk)
    record_access(request, REPORT, "import", job.pk)
    response = StreamingHttpResponse(
        report_csv(pipeline.report_rows(job)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-report.csv"'
    return response


class _Echo:
    def write(self, value: str) -> str:
        return value


def report_csv(rows: Iterable[tuple[int | None, str, str]]) -> Iterator[str]:
    """The report as CSV (line, kind, problem): UTF-8 with a BOM and CRLF rows, streamed."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(["line", "kind", "problem"])
    for line, kind, problem in rows:
        cells = ["" if line is None else str(line), kind, problem]
        yield writer.writerow([neutralise(cell) for cell in cells])
