"""Review work in the browser: tags applied in place, flags raised, the review queue, claims,
decisions (one or many), comments, and the administrators' access log.

POSTs answer htmx with the fragment that changed and plain browsers with a redirect back.
"""

from typing import Any

from django import forms
from django.contrib import messages as notices
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from access.boundary import whole_number
from access.roles import role_required
from review import access, flags, tags
from review.forms import AccessLogFilters, bad_request
from review.models import (
    AccessEvent,
    Flag,
    LexiconPolicy,
    ReviewDecision,
    SamplingPolicy,
    Tag,
)

User = get_user_model()
QUEUE_PAGE = 50


def _back(request: HttpRequest, fallback: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(fallback)


# --- tags -----------------------------------------------------------------------------------


@role_required
@require_POST
def tag_conversation(request: HttpRequest, pk: int) -> HttpResponse:
    convo = access.conversation_for_user(request, pk, access.TAG)
    applied = tags.set_tag(
        convo, _tag(request), access.acting_user(request), applied=_adds(request)
    )
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request,
            "review/transcript.html#conversation-tags",
            {"conversation": convo, "conversation_tags": applied, "tags": Tag.objects.all()},
        )
    return redirect("review:conversation", pk=convo.pk)


@role_required
@require_POST
def tag_message(request: HttpRequest, pk: int) -> HttpResponse:
    message = access.message_for_user(request, pk, access.TAG)
    user = access.acting_user(request)
    applied = tags.set_tag(message, _tag(request), user, applied=_adds(request))
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request,
            "review/transcript.html#message-tags",
            {"message": message, "applied": applied, "tags": Tag.objects.all()},
        )
    return redirect(_at(message))


def _tag(request: HttpRequest) -> Tag:
    value = request.POST.get("tag", "")
    return get_object_or_404(Tag, pk=whole_number(value) or 0)


def _adds(request: HttpRequest) -> bool:
    return request.POST.get("action") != "remove"


def _at(message: Any) -> str:
    url = reverse("review:conversation", args=[message.conversation_id])
    return f"{url}?at={message.pk}#m{message.pk}"


# --- flags ----------------------------------------------------------------------------------


@role_required
@require_POST
def flag_message(request: HttpRequest, pk: int) -> HttpResponse:
    message = access.message_for_user(request, pk, access.RAISE)
    try:
        flag = flags.raise_flag(
            access.acting_user(request), message.conversation, message, _note(request)
        )
    except ValidationError as error:
        notices.error(request, " ".join(error.messages))
        return redirect(_at(message))
    notices.success(request, f"Flag {flag.pk} raised for review.")
    return redirect(_at(message))


@role_required
@require_POST
def flag_conversation(request: HttpRequest, pk: int) -> HttpResponse:
    convo = access.conversation_for_user(request, pk, access.RAISE)
    try:
        flag = flags.raise_flag(access.acting_user(request), convo, None, _note(request))
    except ValidationError as error:
        notices.error(request, " ".join(error.messages))
        return redirect("review:conversation", pk=convo.pk)
    notices.success(request, f"Flag {flag.pk} raised for review.")
    return redirect("review:conversation", pk=convo.pk)


def _note(request: HttpRequest) -> str:
    return _text(request, "note", 2000)


def _text(request: HttpRequest, name: str, limit: int) -> str:
    """Free text a reviewer typed: at most `limit` characters and no NUL (PostgreSQL text cannot
    hold one); a ValidationError says what is wrong."""
    field = forms.CharField(required=False, max_length=limit)
    text: str = field.clean(request.POST.get(name, ""))
    return text


# --- the queue ------------------------------------------------------------------------------


class QueueFilter(forms.Form):
    state = forms.ChoiceField(
        choices=[("open", "open or escalated"), ("", "any state"), *Flag.State.choices],
        required=False,
    )
    policy = forms.ChoiceField(required=False, choices=[])
    assignee = forms.ChoiceField(required=False, choices=[])
    page = forms.IntegerField(required=False, min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["policy"].choices = [  # type: ignore[attr-defined]
            ("", "any source"),
            ("manual", "raised by hand"),
            *[(f"lexicon:{p.pk}", f"lexicon: {p.name}") for p in LexiconPolicy.objects.all()],
            *[(f"sampling:{p.pk}", f"sample: {p.name}") for p in SamplingPolicy.objects.all()],
        ]
        self.fields["assignee"].choices = [  # type: ignore[attr-defined]
            ("", "anyone"),
            ("me", "me"),
            ("none", "unassigned"),
            *[(str(u.pk), u.get_username()) for u in reviewers()],
        ]


def reviewers() -> Any:
    """Users who may decide flags: whom a flag can be escalated to."""
    return (
        User.objects.filter(is_active=True, groups__permissions__codename="decide_flag")
        .distinct()
        .order_by("username")
    )


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
    policy = data.get("policy") or ""
    if policy == "manual":
        queued = queued.filter(source=Flag.Source.MANUAL)
    elif policy.startswith("lexicon:"):
        queued = queued.filter(lexicon_policy_id=_int(policy.split(":")[1]))
    elif policy.startswith("sampling:"):
        queued = queued.filter(sampling_draw__policy_id=_int(policy.split(":")[1]))
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


def _int(value: str) -> int:
    return whole_number(value) or 0


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


@role_required
@require_POST
def claim(request: HttpRequest, pk: int) -> HttpResponse:
    flag = access.flag_for_user(request, pk, access.DECIDE)
    user = access.acting_user(request)
    if flags.claim(flag, user):
        notices.success(request, f"Flag {flag.pk} is yours.")
    elif flag.raised_by_id == user.pk:
        notices.error(request, f"You raised flag {flag.pk}: somebody else decides it.")
    else:
        notices.error(request, f"Flag {flag.pk} is already held by {flag.assignee}.")
    return _back(request, reverse("review:flag", args=[flag.pk]))


@role_required
@require_POST
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    flag = access.flag_for_user(request, pk, access.DECIDE)
    try:
        flags.decide(
            [flag],
            access.acting_user(request),
            request.POST.get("outcome", ""),
            _text(request, "reason", 5000),
            _escalate_to(request),
        )
    except ValidationError as error:
        notices.error(request, " ".join(error.messages))
        return redirect("review:flag", pk=flag.pk)
    except PermissionDenied as refused:  # not theirs to decide (review/flags.py's not_yours)
        notices.error(request, str(refused))
        return redirect("review:flag", pk=flag.pk)
    notices.success(request, f"Decision on flag {flag.pk} recorded and sealed.")
    return _back(request, reverse("review:flag", args=[flag.pk]))


@role_required
@require_POST
def bulk_decide(request: HttpRequest) -> HttpResponse:
    access.require(request, access.DECIDE)
    ids = [n for n in map(whole_number, request.POST.getlist("flag")[:500]) if n is not None]
    chosen = list(access.flags_for_user(request).filter(pk__in=ids))
    back = reverse("review:queue") + "?" + request.POST.get("query", "")
    if not chosen:
        notices.error(request, "Choose at least one flag.")
        return redirect(back)
    outcome = request.POST.get("outcome", "")
    try:
        if outcome == "claim":
            taken = sum(flags.claim(f, access.acting_user(request)) for f in chosen)
            notices.success(request, f"Claimed {taken} of {len(chosen)} flags.")
        else:
            made = flags.decide(
                chosen,
                access.acting_user(request),
                outcome,
                _text(request, "reason", 5000),
                _escalate_to(request),
            )
            notices.success(request, f"{len(made)} decisions recorded and sealed.")
    except ValidationError as error:
        notices.error(request, " ".join(error.messages))
    except PermissionDenied as refused:  # one of them is not theirs to decide: none is decided
        notices.error(request, str(refused))
    return redirect(back)


def _escalate_to(request: HttpRequest) -> Any:
    pk = whole_number(request.POST.get("escalate_to", ""))
    return None if pk is None else reviewers().filter(pk=pk).first()


@role_required
@require_POST
def comment(request: HttpRequest, pk: int) -> HttpResponse:
    flag = access.flag_for_user(request, pk, access.DECIDE)
    try:
        flags.comment(flag, access.acting_user(request), _text(request, "text", 5000))
        notices.success(request, "Comment added and sealed.")
    except (ValidationError, IntegrityError) as error:
        notices.error(request, " ".join(getattr(error, "messages", [str(error)])))
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
