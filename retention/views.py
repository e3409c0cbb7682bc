"""The retention pages: policies and dispositions, legal holds, GDPR requests and the record of
processing.

Each view: access helper (retention/access.py) → form → one domain call (holds, disposition,
erasure) → render or redirect. The domain functions seal what they do in the ledger; the access
log has no action for these pages (they show no message content), so nothing is recorded there.
"""

from typing import Any

from django.conf import settings
from django.contrib import messages as notices
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from access.roles import role_required
from access.sessions import recent_authentication_required
from review.access import acting_user, require, saved_searches_for_user

from . import disposition, erasure, holds, record_of_processing
from .access import (
    ADD_ERASURE,
    APPLY,
    MANAGE_HOLDS,
    VIEW_DISPOSITIONS,
    VIEW_ERASURE,
    VIEW_RECORD,
    disposition_for_user,
    dispositions_for_user,
    erasure_requests_for_user,
    hold_for_user,
    holds_for_user,
    policies_for_user,
)
from .forms import ErasureForm, HoldChangeForm, HoldForm, ReasonForm
from .models import Disposition, LegalHold
from .views_support import (
    channels_under_default,
    files_waiting,
    hold_item_kinds,
    policy_rows,
    scope_of,
    with_files_waiting,
)

RECENT_DISPOSITIONS = 20
LIST_SIZE = 200


# --- policies and dispositions ----------------------------------------------------------------


@role_required
@require_GET
def policies(request: HttpRequest) -> HttpResponse:
    return _policies_page(request)


def _policies_page(
    request: HttpRequest, report: disposition.Report | None = None, status: int = 200
) -> HttpResponse:
    rows = policy_rows(policies_for_user(request))
    can_view = request.user.has_perm(VIEW_DISPOSITIONS)
    context = {
        "rows": rows,
        "under_default": channels_under_default(),
        "report": report,
        "report_kinds": sorted(report.by_kind.items()) if report else [],
        "report_policies": sorted(report.by_policy.items()) if report else [],
        "dispositions": with_files_waiting(dispositions_for_user(request))[:RECENT_DISPOSITIONS]
        if can_view
        else [],
        "threshold": settings.DISPOSITION_APPROVAL_THRESHOLD,
    }
    return render(request, "retention/policies.html", context, status=status)


@role_required
@require_POST
def preview(request: HttpRequest) -> HttpResponse:
    """A dry run: what a disposition would remove now (POST: it refreshes the holds first)."""
    dispositions_for_user(request)
    return _policies_page(request, disposition.report())


@role_required
@require_POST
@recent_authentication_required
def dispose(request: HttpRequest) -> HttpResponse:
    require(request, APPLY)
    planned = disposition.plan(acting_user(request))
    if planned is None:
        notices.info(request, "Nothing is due: no record is past retention and free of holds.")
    elif planned.state == Disposition.State.AWAITING_APPROVAL:
        notices.warning(
            request,
            f"Disposition {planned.pk} covers {planned.planned:,} records, above the threshold "
            f"of {settings.DISPOSITION_APPROVAL_THRESHOLD:,}: it waits for a second "
            "administrator's approval.",
        )
    elif planned.state == Disposition.State.DONE:
        waiting = files_waiting(planned)
        notices.success(
            request,
            f"Disposition {planned.pk} done: {planned.disposed:,} records disposed of, "
            f"{planned.media_deleted - waiting:,} media files deleted; each batch is sealed in "
            "the ledger.",
        )
        if waiting:
            notices.warning(
                request,
                f"The records store has not deleted {waiting:,} media files of disposition "
                f"{planned.pk} yet (see below): they are retried at the next run.",
            )
    else:
        notices.error(
            request, f"Disposition {planned.pk} {planned.get_state_display()}: {planned.error}"
        )
    return redirect("retention:policies")


@role_required
@require_POST
@recent_authentication_required
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    planned = disposition_for_user(request, pk)
    try:
        disposition.approve(planned, acting_user(request))
    except ValidationError as problem:
        notices.error(request, f"Disposition {planned.pk}: {' '.join(problem.messages)}")
    else:
        notices.success(request, f"Disposition {planned.pk} approved: it runs in the background.")
    return redirect("retention:policies")


@role_required
@require_POST
def reject(request: HttpRequest, pk: int) -> HttpResponse:
    planned = disposition_for_user(request, pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        notices.error(request, f"Disposition {planned.pk}: say why you reject it.")
        return redirect("retention:policies")
    try:
        disposition.reject(planned, acting_user(request), form.cleaned_data["reason"])
    except ValidationError as problem:
        notices.error(request, f"Disposition {planned.pk}: {' '.join(problem.messages)}")
    else:
        notices.success(request, f"Disposition {planned.pk} rejected.")
    return redirect("retention:policies")


# --- legal holds ------------------------------------------------------------------------------


@role_required
@require_GET
def hold_list(request: HttpRequest) -> HttpResponse:
    form = HoldForm(saved=saved_searches_for_user(request))
    return _hold_list_page(request, form)


def _hold_list_page(request: HttpRequest, form: HoldForm, status: int = 200) -> HttpResponse:
    listed = list(holds_for_user(request)[:LIST_SIZE])
    counts = holds.message_counts(listed)
    rows = [(hold, counts.get(hold.pk, 0)) for hold in listed]
    context = {"rows": rows, "form": form if request.user.has_perm(MANAGE_HOLDS) else None}
    return render(request, "retention/holds.html", context, status=status)


@role_required
@require_POST
@recent_authentication_required
def hold_create(request: HttpRequest) -> HttpResponse:
    require(request, MANAGE_HOLDS)
    form = HoldForm(request.POST, saved=saved_searches_for_user(request))
    if form.is_valid():
        data = form.cleaned_data
        try:
            hold = holds.create(
                acting_user(request),
                matter=data["matter"],
                reason=data["reason"],
                scope=data["scope"],
                matter_number=data["matter_number"],
                custodians=data["custodians"],
            )
        except ValidationError as problem:
            form.add_error(None, problem)
        else:
            notices.success(request, f"Legal hold “{hold.matter}” created and sealed.")
            return redirect("retention:hold", pk=hold.pk)
    return _hold_list_page(request, form, status=400)


@role_required
@require_GET
def hold_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _hold_page(request, hold_for_user(request, pk))


def _hold_page(
    request: HttpRequest, hold: LegalHold, status: int = 200, **forms: Any
) -> HttpResponse:
    scope = scope_of(hold)
    manage = request.user.has_perm(MANAGE_HOLDS) and hold.active
    if manage and scope is not None and "change_form" not in forms:
        forms["change_form"] = HoldChangeForm(
            current=scope,
            saved=saved_searches_for_user(request),
            initial={
                "custodians": hold.custodians,
                "matter_number": hold.matter_number,
                "date_from": scope.date_from,
                "date_to": scope.date_to,
            },
        )
    if manage and "release_form" not in forms:
        forms["release_form"] = ReasonForm()
    context = {
        "hold": hold,
        "scope_label": scope.label() if scope else "",
        "kinds": hold_item_kinds(hold),
        "messages_held": holds.message_counts([hold]).get(hold.pk, 0),
        **forms,
    }
    return render(request, "retention/hold.html", context, status=status)


@role_required
@require_POST
@recent_authentication_required
def hold_change(request: HttpRequest, pk: int) -> HttpResponse:
    hold = hold_for_user(request, pk, MANAGE_HOLDS)
    scope = scope_of(hold)
    if not hold.active or scope is None:
        notices.error(
            request,
            "This hold cannot be changed: it has been released, or its stored scope no longer "
            "passes the checks (release it and create a new one).",
        )
        return redirect("retention:hold", pk=hold.pk)
    form = HoldChangeForm(request.POST, current=scope, saved=saved_searches_for_user(request))
    if form.is_valid():
        data = form.cleaned_data
        try:
            holds.change(
                hold,
                acting_user(request),
                reason=data["reason"],
                scope=data["scope"],
                custodians=data["custodians"],
                matter_number=data["matter_number"],
            )
        except ValidationError as problem:
            form.add_error(None, problem)
        else:
            notices.success(request, "The hold's change is sealed; what it covers was refreshed.")
            return redirect("retention:hold", pk=hold.pk)
    return _hold_page(request, hold, status=400, change_form=form)


@role_required
@require_POST
@recent_authentication_required
def hold_release(request: HttpRequest, pk: int) -> HttpResponse:
    hold = hold_for_user(request, pk, MANAGE_HOLDS)
    form = ReasonForm(request.POST)
    if form.is_valid():
        try:
            holds.release(hold, acting_user(request), form.cleaned_data["reason"])
        except ValidationError as problem:
            form.add_error(None, problem)
        else:
            notices.success(request, f"Legal hold “{hold.matter}” released.")
            return redirect("retention:hold", pk=hold.pk)
    return _hold_page(request, hold, status=400, release_form=form)


# --- GDPR -------------------------------------------------------------------------------------


@role_required
@require_GET
def gdpr(request: HttpRequest) -> HttpResponse:
    return _gdpr_page(request, ErasureForm())


def _gdpr_page(request: HttpRequest, form: ErasureForm, status: int = 200) -> HttpResponse:
    user = request.user
    if not (user.has_perm(VIEW_ERASURE) or user.has_perm(VIEW_RECORD)):
        raise PermissionDenied("Your role does not allow this (view_erasurerequest).")
    context = {
        "requests": erasure_requests_for_user(request)[:LIST_SIZE]
        if user.has_perm(VIEW_ERASURE)
        else None,
        "form": form if user.has_perm(ADD_ERASURE) else None,
    }
    return render(request, "retention/gdpr.html", context, status=status)


@role_required
@require_POST
def erasure_create(request: HttpRequest) -> HttpResponse:
    require(request, ADD_ERASURE)
    form = ErasureForm(request.POST)
    if form.is_valid():
        try:
            made = erasure.record(
                acting_user(request), form.cleaned_data["number"], form.cleaned_data["reference"]
            )
        except ValidationError as problem:
            form.add_error("number", problem)
        else:
            notices.success(
                request, f"Erasure request {made.pk} recorded: {made.get_state_display()}."
            )
            return redirect(f"{reverse('retention:gdpr')}#request-{made.pk}")
    return _gdpr_page(request, form, status=400)


@role_required
@require_GET
def record_page(request: HttpRequest) -> HttpResponse:
    require(request, VIEW_RECORD)
    record = record_of_processing.build()
    return render(request, "retention/record_of_processing.html", {"record": record})


@role_required
@require_GET
def record_pdf(request: HttpRequest) -> HttpResponse:
    """The same record as a PDF, rendered in-process (a few pages), as a download."""
    require(request, VIEW_RECORD)
    record = record_of_processing.build()
    html = render_to_string("retention/record_of_processing_pdf.html", {"record": record})
    pdf = record_of_processing.pdf(html)
    name = f"record-of-processing-{timezone.localdate():%Y-%m-%d}.pdf"
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response
