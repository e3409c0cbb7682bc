"""The review queue in the browser: the list of flags, one flag with its decisions and comments,
claims, decisions (one or many), comments, and the administrators' access log.

Each view: access helper → form (review/forms.py) → one domain call (review/flags.py) → render
or redirect. A refusal (a form error, or the domain's) is a notice on the page redirected to.
"""

from django.contrib import messages as notices
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from access.roles import role_required
from review import access, flags
from review.forms import (
    AccessLogFilters,
    BulkDecisionForm,
    ClaimForm,
    CommentForm,
    DecisionForm,
    QueueFilter,
    bad_request,
    form_problems,
    refusal,
    reviewers,
)
from review.models import AccessEvent, Flag, ReviewDecision

QUEUE_PAGE = 50


@role_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    queued = access.flags_for_user(request).select_related(
        "conversation__participant",
        "message",
        "lexicon_policy",
        "sampling_draw__policy",
        "assignee",
    )
    form = QueueFilter(request.GET or {"state": "open"})
    data = form.cleaned_data if form.is_valid() else {"state": "open"}
    state = data.get("state")
    if state == "open":
        queued = queued.filter(state__in=[Flag.State.OPEN, Flag.State.ESCALATED])
    elif state:
        queued = queued.filter(state=state)
    # The form offered these choices, so an id after "lexicon:" or "sampling:" is a number.
    source, _, policy_pk = (data.get("policy") or "").partition(":")
    if source == "manual":
        queued = queued.filter(source=Flag.Source.MANUAL)
    elif source == "lexicon":
        queued = queued.filter(lexicon_policy_id=int(policy_pk))
    elif source == "sampling":
        queued = queued.filter(sampling_draw__policy_id=int(policy_pk))
    assignee = data.get("assignee") or ""
    if assignee == "me":
        queued = queued.filter(assignee_id=access.acting_user(request).pk)
    elif assignee == "none":
        queued = queued.filter(assignee__isnull=True)
    elif assignee.isdigit():
        queued = queued.filter(assignee_id=int(assignee))
    page = Paginator(queued.order_by("-raised_at", "-id"), QUEUE_PAGE).get_page(data.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "review/queue.html",
        {
            "form": form,
            "page": page,
            "query_string": query.urlencode(),
            "reviewers": reviewers(),
            "can_decide": request.user.has_perm(access.DECIDE),
            "outcomes": ReviewDecision.Outcome.choices,
        },
    )


@role_required
@require_GET
def flag_detail(request: HttpRequest, pk: int) -> HttpResponse:
    flag = access.flag_for_user(request, pk)
    access.record_access(request, AccessEvent.Action.VIEW_FLAG, "flag", flag.pk)
    return render(
        request,
        "review/flag.html",
        {
            "flag": flag,
            "decisions": flag.decisions.select_related("decided_by", "escalated_to", "entry"),
            "comments": flag.comments.select_related("author", "entry"),
            "reviewers": reviewers().exclude(pk=access.acting_user(request).pk),
            "can_decide": request.user.has_perm(access.DECIDE),
            "outcomes": ReviewDecision.Outcome.choices,
        },
    )


def _back(request: HttpRequest, form: ClaimForm | DecisionForm, fallback: str) -> HttpResponse:
    """To the page the form asked to return to, if it is on this site; else to `fallback`."""
    target = str(form.cleaned_data.get("next") or "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(fallback)


@role_required
@require_POST
def claim(request: HttpRequest, pk: int) -> HttpResponse:
    flag = access.flag_for_user(request, pk, access.DECIDE)
    form = ClaimForm(request.POST)
    form.is_valid()  # `next` is its only field, and any value is checked by _back
    user = access.acting_user(request)
    if flags.claim(flag, user):
        notices.success(request, f"Flag {flag.pk} is yours.")
    elif flag.raised_by_id == user.pk:
        notices.error(request, f"You raised flag {flag.pk}: somebody else decides it.")
    else:
        notices.error(request, f"Flag {flag.pk} is already held by {flag.assignee}.")
    return _back(request, form, reverse("review:flag", args=[flag.pk]))


@role_required
@require_POST
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    flag = access.flag_for_user(request, pk, access.DECIDE)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        notices.error(request, form_problems(form))
        return redirect("review:flag", pk=flag.pk)
    data = form.cleaned_data
    user = access.acting_user(request)
    try:
        flags.decide([flag], user, data["outcome"], data["reason"], data["escalate_to"])
    except (ValidationError, PermissionDenied) as refused:  # PermissionDenied: not theirs
        notices.error(request, refusal(refused))
        return redirect("review:flag", pk=flag.pk)
    notices.success(request, f"Decision on flag {flag.pk} recorded and sealed.")
    return _back(request, form, reverse("review:flag", args=[flag.pk]))


@role_required
@require_POST
def bulk_decide(request: HttpRequest) -> HttpResponse:
    access.require(request, access.DECIDE)
    form = BulkDecisionForm(request.POST, flags=access.flags_for_user(request))
    valid = form.is_valid()
    back = redirect(reverse("review:queue") + "?" + str(form.cleaned_data.get("query") or ""))
    if not valid:
        notices.error(request, form_problems(form))
        return back
    data = form.cleaned_data
    chosen, user = data["flag"], access.acting_user(request)
    try:
        if data["outcome"] == "claim":
            taken = sum(flags.claim(f, user) for f in chosen)
            notices.success(request, f"Claimed {taken} of {len(chosen)} flags.")
        else:
            made = flags.decide(chosen, user, data["outcome"], data["reason"], data["escalate_to"])
            notices.success(request, f"{len(made)} decisions recorded and sealed.")
    except (ValidationError, PermissionDenied) as refused:  # one not theirs: none is decided
        notices.error(request, refusal(refused))
    return back


@role_required
@require_POST
def comment(request: HttpRequest, pk: int) -> HttpResponse:
    flag = access.flag_for_user(request, pk, access.DECIDE)
    form = CommentForm(request.POST)
    if not form.is_valid():
        notices.error(request, form_problems(form))
        return redirect("review:flag", pk=flag.pk)
    try:
        flags.comment(flag, access.acting_user(request), form.cleaned_data["text"])
        notices.success(request, "Comment added and sealed.")
    except (ValidationError, IntegrityError) as error:
        notices.error(request, refusal(error))
    return redirect("review:flag", pk=flag.pk)


# --- the access log -------------------------------------------------------------------------


@role_required
@require_GET
def access_log(request: HttpRequest) -> HttpResponse:
    events = access.access_events_for_user(request)
    form = AccessLogFilters(request.GET)
    if not form.is_valid():
        return bad_request(form)
    if form.cleaned_data["user"]:
        events = events.filter(username=form.cleaned_data["user"])
    if form.cleaned_data["action"]:
        events = events.filter(action=form.cleaned_data["action"])
    page = Paginator(events.order_by("-at", "-id"), 100).get_page(form.cleaned_data["page"])
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "review/access_log.html",
        {
            "page": page,
            "actions": AccessEvent.Action.choices,
            "filters": request.GET,
            "query_string": query.urlencode(),
        },
    )
