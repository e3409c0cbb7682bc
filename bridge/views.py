"""The bridge's pages: replying from the transcript, and the reconciliation page (what is not yet
journaled or notified, and what went wrong)."""

from django.contrib import messages as notices
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from access.boundary import whole_number
from access.roles import role_required
from archive.models import ChainHead
from review.access import conversation_for_user, require

from . import outbound
from .models import BridgeCursor, InboundEmail, MessageTemplate, Notification, Outbound

REPLY = "bridge.reply_to_client"
RECONCILE = "bridge.view_reconciliation"
RETRY = "bridge.change_route"
LIST_SIZE = 200
MAX_UPLOAD = 100 * 1024 * 1024
MAX_TEXT = 4096  # WhatsApp's limit for a text message


@role_required
@require_POST
def reply(request: HttpRequest, pk: int) -> HttpResponse:
    """Send text, a file or a template from the transcript, through the same path as email."""
    conversation = conversation_for_user(request, pk, REPLY)
    back = redirect("review:conversation", pk=conversation.pk)
    submission = request.POST.get("submission", "")[:64]
    earlier = Outbound.objects.filter(user_id=request.user.pk or 0, submission=submission)
    if submission and earlier.exists():
        notices.info(request, "That reply was already sent; it was not sent again.")
        return back
    parts: list[outbound.Part] = []
    template_id = request.POST.get("template", "")
    if template_id:
        template = MessageTemplate.objects.filter(
            pk=whole_number(template_id) or 0,
            channel_id=conversation.channel_id,
            active=True,
        ).first()
        if template is None:
            notices.error(request, "That template is not approved for this number.")
            return back
        raw = request.POST.get("parameters", "")
        values = tuple(p.strip() for p in raw.split("|")) if raw.strip() else ()
        parts.append(outbound.Template(template, values))
    else:
        text = request.POST.get("text", "").replace("\r\n", "\n").strip()
        if len(text) > MAX_TEXT:
            notices.error(
                request, f"Not sent: WhatsApp takes at most {MAX_TEXT:,} characters of text."
            )
            return back
        if text:
            parts.append(outbound.Text(text))
        upload = request.FILES.get("file")
        if upload is not None:
            if upload.size is not None and upload.size > MAX_UPLOAD:
                notices.error(request, "The file is larger than WhatsApp's 100 MB limit.")
                return back
            parts.append(
                outbound.File(
                    upload.read(),
                    upload.content_type or "application/octet-stream",
                    (upload.name or "attachment")[:200],
                )
            )
    user = request.user
    author = outbound.Author(
        Outbound.Source.PORTAL, user, getattr(user, "email", ""), submission=submission
    )
    try:
        sent = outbound.send(conversation, parts, author)
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
    require(request, RECONCILE)
    pending = Notification.objects.filter(state=Notification.State.PENDING)
    head = ChainHead.objects.values_list("size", flat=True).first() or 0
    cursor = BridgeCursor.objects.values_list("planned_through", flat=True).first()
    related = ("route", "conversation__channel")
    context = {
        "journal": pending.filter(kind=Notification.Kind.JOURNAL)
        .select_related(*related)
        .annotate(count=Count("messages"), first=Min("messages__sent_at"))
        .order_by("created_at")[:LIST_SIZE],
        "journal_total": pending.filter(kind=Notification.Kind.JOURNAL).count(),
        "staff": pending.exclude(kind=Notification.Kind.JOURNAL)
        .filter(attempts__gt=0)
        .select_related(*related)
        .order_by("created_at")[:LIST_SIZE],
        "failed": Notification.objects.filter(state=Notification.State.FAILED)
        .select_related(*related)
        .annotate(count=Count("messages"))
        .order_by("-created_at")[:LIST_SIZE],
        "replies": InboundEmail.objects.exclude(
            state__in=[InboundEmail.State.SENT, InboundEmail.State.IGNORED]
        ).order_by("-received_at")[:LIST_SIZE],
        "sends": Outbound.objects.filter(
            state__in=[Outbound.State.UNKNOWN, Outbound.State.FAILED, Outbound.State.SENDING]
        )
        .select_related("conversation__channel")
        .order_by("-created_at")[:LIST_SIZE],
        "unplanned": max(head - 1 - (cursor if cursor is not None else -1), 0),
        "now": timezone.now(),
        "can_retry": request.user.has_perm(RETRY),
    }
    return render(request, "bridge/reconciliation.html", context)


@role_required
@require_POST
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    """Try a notification again now (one that was given up on, or is waiting to be retried)."""
    require(request, RETRY)
    updated = (
        Notification.objects.filter(pk=pk)
        .exclude(state=Notification.State.SENT)
        .update(state=Notification.State.PENDING, due_at=timezone.now())
    )
    if updated:
        from .dispatch import wake

        wake()
        notices.success(request, "The notification will be tried again now.")
    else:
        notices.error(request, "That notification does not exist or was already sent.")
    return redirect("bridge:reconciliation")
