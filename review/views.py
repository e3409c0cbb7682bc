"""Reading the archive: the conversation list, transcripts, media, search and saved searches.

Each view: access helper → form → one domain call → render. Every transcript view, search and
media download is recorded as an access event.
"""

from urllib.parse import urlencode, urlsplit

from django.contrib import messages as notices
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from clientwindow.roles import role_required
from messaging.media import open_media
from messaging.models import Channel, ConversationSummary, Message
from review import access, search, transcript
from review.models import AccessEvent, SavedSearch, Tag

LIST_PAGE = 50
# Served inline only when a browser cannot run them as a document; everything else downloads.
INLINE_TYPES = {
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "audio/ogg",
    "audio/mpeg",
    "audio/mp4",
    "audio/aac",
    "audio/amr",
    "video/mp4",
    "video/3gpp",
}


@role_required
@require_GET
def conversations(request: HttpRequest) -> HttpResponse:
    """Most recent first, paged by keyset (a cursor), so page 1,000 costs what page 1 does."""
    access.conversations_for_user(request)
    summaries = ConversationSummary.objects.select_related(
        "conversation__participant", "channel", "last_message"
    )
    channel = request.GET.get("channel", "")
    if channel.isdigit():
        summaries = summaries.filter(channel_id=int(channel))
    who = request.GET.get("who", "").strip()[:100]
    if who:
        summaries = summaries.filter(
            conversation__in=search.participant_conversations(who).values("pk")
        )
    tag = request.GET.get("tag", "")
    if tag.isdigit():
        summaries = summaries.filter(conversation__tags__tag_id=int(tag))
    if request.GET.get("flagged") == "open":
        summaries = summaries.filter(
            conversation__flags__state__in=["open", "escalated"]
        ).distinct()
    oldest = request.GET.get("sort") == "oldest"
    summaries = summaries.filter(_cursor(request.GET.get("after", ""), oldest))
    order = (
        (F("last_message_at").asc(nulls_first=True), "conversation_id")
        if oldest
        else (F("last_message_at").desc(nulls_last=True), "-conversation_id")
    )
    page = list(summaries.order_by(*order)[: LIST_PAGE + 1])
    rows = page[:LIST_PAGE]
    _attach_list_details(rows)
    next_cursor = ""
    if len(page) > LIST_PAGE:
        last = rows[-1]
        stamp = last.last_message_at.isoformat() if last.last_message_at else ""
        next_cursor = f"{stamp}|{last.conversation_id}"
    query = request.GET.copy()
    query.pop("after", None)
    return render(
        request,
        "review/conversations.html",
        {
            "rows": rows,
            "channels": Channel.objects.order_by("name"),
            "tags": Tag.objects.all(),
            "filters": request.GET,
            "next_query": urlencode({**query.dict(), "after": next_cursor}) if next_cursor else "",
        },
    )


def _cursor(value: str, oldest: bool) -> Q:
    stamp, _, pk = value.partition("|")
    if not pk.isdigit():
        return Q()
    from django.utils.dateparse import parse_datetime

    moment = parse_datetime(stamp) if stamp else None
    if moment is None:  # conversations with no dated message sort last (or first)
        if oldest:
            return Q(last_message_at__isnull=True, conversation_id__gt=pk) | Q(
                last_message_at__isnull=False
            )
        return Q(last_message_at__isnull=True, conversation_id__lt=pk)
    if oldest:
        return Q(last_message_at__gt=moment) | Q(last_message_at=moment, conversation_id__gt=pk)
    return (
        Q(last_message_at__lt=moment)
        | Q(last_message_at=moment, conversation_id__lt=pk)
        | Q(last_message_at__isnull=True)
    )


def _attach_list_details(rows: list[ConversationSummary]) -> None:
    """Names, tags and open-flag counts for one page of the list (three queries)."""
    from django.db.models import Count

    from messaging.models import ParticipantProfile
    from review.models import ConversationTag, Flag

    ids = [row.conversation_id for row in rows]
    participants = [r.conversation.participant_id for r in rows if r.conversation.participant_id]
    names: dict[int, str] = {}
    for pid, name, username in (
        ParticipantProfile.objects.filter(participant_id__in=participants)
        .order_by("seen_at")
        .values_list("participant_id", "name", "username")
    ):
        names[pid] = name or username
    tags: dict[int, list[Tag]] = {}
    for ct in ConversationTag.objects.filter(conversation_id__in=ids).select_related("tag"):
        tags.setdefault(ct.conversation_id, []).append(ct.tag)
    open_flags = dict(
        Flag.objects.filter(conversation_id__in=ids, state__in=["open", "escalated"])
        .values_list("conversation_id")
        .annotate(n=Count("id"))
    )
    for row in rows:
        row.name = names.get(row.conversation.participant_id or 0, "")  # type: ignore[attr-defined]
        row.tag_list = tags.get(row.conversation_id, [])  # type: ignore[attr-defined]
        row.open_flags = open_flags.get(row.conversation_id, 0)  # type: ignore[attr-defined]


@role_required
@require_GET
def conversation(request: HttpRequest, pk: int) -> HttpResponse:
    """The transcript: the latest messages, or those around `?at=<message id>`."""
    convo = access.conversation_for_user(request, pk)
    at = _message_param(request, "at", convo.pk)
    if at is not None:
        at = transcript.resolve(convo, at)
    win = transcript.window(convo, at=at)
    access.record_access(
        request,
        AccessEvent.Action.VIEW_CONVERSATION,
        "conversation",
        convo.pk,
        {"at": at.pk if at else None, "messages": len(win.rows)},
    )
    from review.models import ConversationTag, Flag

    return render(
        request,
        "review/transcript.html",
        {
            "conversation": convo,
            "window": win,
            "at": at,
            "name": _name(convo),
            "conversation_tags": ConversationTag.objects.filter(conversation=convo).select_related(
                "tag"
            ),
            "conversation_flags": Flag.objects.filter(conversation=convo, message__isnull=True),
            "tags": Tag.objects.all(),
        },
    )


@role_required
@require_GET
def conversation_messages(request: HttpRequest, pk: int) -> HttpResponse:
    """htmx: the next window before or after a message."""
    convo = access.conversation_for_user(request, pk)
    before = _message_param(request, "before", convo.pk)
    after = _message_param(request, "after", convo.pk)
    if before is None and after is None:
        return HttpResponseBadRequest("Say which message to load before or after.")
    win = transcript.window(convo, before=before, after=after)
    access.record_access(
        request,
        AccessEvent.Action.VIEW_CONVERSATION,
        "conversation",
        convo.pk,
        {"before": before.pk if before else None, "after": after.pk if after else None},
    )
    return render(
        request,
        "review/transcript.html#window",
        {
            "conversation": convo,
            "window": win,
            "direction": "before" if before else "after",
            "tags": Tag.objects.all(),
        },
    )


def _message_param(request: HttpRequest, name: str, conversation_pk: int) -> Message | None:
    value = request.GET.get(name, "")
    if not value.isdigit():
        return None
    return get_object_or_404(
        access.messages_for_user(request).select_related("entry", "sender"),
        pk=int(value),
        conversation_id=conversation_pk,
    )


def _name(convo: object) -> str:
    from messaging.models import ParticipantProfile

    participant_id = getattr(convo, "participant_id", None)
    if participant_id is None:
        return ""
    profile = (
        ParticipantProfile.objects.filter(participant_id=participant_id)
        .order_by("-seen_at")
        .first()
    )
    return (profile.name or profile.username) if profile else ""


@role_required
@require_GET
def media(request: HttpRequest, pk: int) -> FileResponse:
    """A message's stored media file. Images, audio and video of safe types are shown inline;
    anything else (an SVG, HTML, a PDF) is a download, and never sniffed."""
    attachment = access.attachment_for_user(request, pk)
    stored = attachment.file
    assert stored is not None  # a STORED attachment always has its file
    access.record_access(
        request,
        AccessEvent.Action.DOWNLOAD_MEDIA,
        "message",
        attachment.message_id,
        {"sha256": stored.sha256, "size": stored.size},
    )
    mime = stored.mime_type.split(";")[0].strip().lower()
    inline = mime in INLINE_TYPES and request.GET.get("download") != "1"
    filename = _filename(attachment.message, stored.sha256, mime)
    response = FileResponse(
        open_media(stored),
        as_attachment=not inline,
        filename=filename,
        content_type=mime if inline else "application/octet-stream",
    )
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


def _filename(message: Message, sha256: str, mime: str) -> str:
    body = message.payload.get(message.type) if isinstance(message.payload, dict) else None
    name = body.get("filename") if isinstance(body, dict) else None
    if isinstance(name, str) and name.strip():
        return name.strip()[:150]
    extension = mime.split("/")[-1] if "/" in mime else "bin"
    return f"{message.type}-{sha256[:12]}.{extension}"


@role_required
@require_GET
def search_page(request: HttpRequest) -> HttpResponse:
    messages = access.messages_for_user(request)
    form = search.SearchForm(request.GET or None)
    results = None
    if form.is_bound and form.is_valid():
        results = search.search(messages, form.cleaned_data)
        access.record_access(
            request,
            AccessEvent.Action.SEARCH,
            detail={
                "query": form.cleaned_data.get("q") or "",
                "filters": {
                    k: str(v.pk if hasattr(v, "pk") else v)
                    for k, v in form.cleaned_data.items()
                    if v not in (None, "", False, "newest") and k not in ("q", "page")
                },
                "results": results.total,
            },
        )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "review/search.html",
        {
            "form": form,
            "results": results,
            "query_string": query.urlencode(),
            "saved": access.saved_searches_for_user(request),
        },
    )


@role_required
@require_POST
def save_search(request: HttpRequest) -> HttpResponse:
    access.saved_searches_for_user(request)
    name = request.POST.get("name", "").strip()[:120]
    query = request.POST.get("query", "")[:2000]
    if not name:
        notices.error(request, "Give the search a name to save it.")
        return redirect(f"{_search_url()}?{query}")
    try:
        with transaction.atomic():
            SavedSearch.objects.create(
                user_id=access.acting_user(request).pk, name=name, query=query
            )
        notices.success(request, f"Saved the search “{name}”.")
    except IntegrityError:
        notices.error(request, f"You already have a saved search called “{name}”.")
    return redirect(f"{_search_url()}?{query}")


@role_required
@require_POST
def delete_saved_search(request: HttpRequest, pk: int) -> HttpResponse:
    saved = get_object_or_404(access.saved_searches_for_user(request), pk=pk)
    saved.delete()
    notices.success(request, f"Deleted the saved search “{saved.name}”.")
    return redirect(_search_url())


def _search_url() -> str:
    from django.urls import reverse

    return reverse("review:search")


@role_required
@require_GET
def leave(request: HttpRequest) -> HttpResponse:
    """A link a client wrote is never followed by accident: this page shows it in full first."""
    access.require(request, access.READ)
    target = request.GET.get("to", "")
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return HttpResponseBadRequest("Only http and https links can be opened.")
    return render(request, "review/leave.html", {"target": target, "host": parts.hostname})
