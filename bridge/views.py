"""The bridge's pages: replying from the transcript, and the reconciliation page (what is not yet
journaled or notified, and what went wrong).

Each view: access helper (bridge/access.py) → form (bridge/forms.py; `retry` has nothing to
type) → one domain call (`outbound.send`, `dispatch.retry`) → redirect with a notice, or render.
"""

from django.contrib import messages as notices
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from access.roles import role_required

from . import dispatch, outbound
from .access import (
    RETRY,
    conversation_to_reply_in,
    notifications_for_user,
    replies_of_user,
    reply_emails_for_user,
    retriable_notifications,
    sends_for_user,
    templates_for_user,
)
from .forms import ReplyForm
from .models import Outbound
from .reconciliation import figures


@role_required
@require_POST
def reply(request: HttpRequest, pk: int) -> HttpResponse:
    """Send text, a file or a template from the transcript, through the same path as email."""
    conversation = conversation_to_reply_in(request, pk)
    back = redirect("review:conversation", pk=conversation.pk)
    form = ReplyForm(
        request.POST,
        request.FILES,
        templates=templates_for_user(request, conversation),
        sent=replies_of_user(request),
    )
    if not form.is_valid():
        if form.already_sent():
            notices.info(request, form.problem())
        else:
            notices.error(request, form.problem())
        return back
    user = request.user
    author = outbound.Author(
        Outbound.Source.PORTAL,
        user,
        getattr(user, "email", ""),
        submission=form.cleaned_data["submission"],
    )
    try:
        sent = outbound.send(conversation, form.parts(), author)
    except outbound.CannotSend as refusal:
        notices.error(request, f"Not sent: {refusal}")
        return back
    failed = [o for o in sent if o.state != Outbound.State.SENT]
    if failed:
        notices.error(request, f"Not (fully) sent: {failed[0].error}")
    else:
        notices.success(request, "Sent on WhatsApp and archived.")
    return back


@role_required
@require_GET
def reconciliation(request: HttpRequest) -> HttpResponse:
    context = figures(
        notifications_for_user(request), reply_emails_for_user(request), sends_for_user(request)
    )
    context |= {"now": timezone.now(), "can_retry": request.user.has_perm(RETRY)}
    return render(request, "bridge/reconciliation.html", context)


@role_required
@require_POST
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    """Try a notification again now (one that was given up on, or is waiting to be retried)."""
    notification = retriable_notifications(request).filter(pk=pk).first()
    if notification is not None and dispatch.retry(notification):
        notices.success(request, "The notification will be tried again now.")
    else:
        notices.error(request, "That notification does not exist or was already sent.")
    return redirect("bridge:reconciliation")
