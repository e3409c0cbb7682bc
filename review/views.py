"""Reading the archive: the conversation list, transcripts, media, search and saved searches.

Each view: access helper → form → one domain call → render. Every transcript view, search and
media download is recorded as an access event.
"""

from urllib.parse import urlencode, urlsplit

from django.contrib import messages as notices
from django.db import IntegrityError, transaction
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from access.boundary import whole_number
from access.roles import role_required
from messaging.media import open_media
from messaging.models import Channel, Conversation, Message
from messaging.participants import latest_names
from review import access, conversation_list, search, transcript
from review.forms import ConversationFilters, SavedSearchForm, bad_request
from review.models import AccessEvent, ConversationTag, Flag, SavedSearch, Tag

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
    filters = ConversationFilters(request.GET)
    if not filters.is_valid():
        return bad_request(filters)
    listing = conversation_list.page(conversation_list.Filters.from_query(request.GET))
    query = request.GET.copy()
    query.pop("after", None)
    next_query = urlencode({**query.dict(), "after": listing.next_cursor})
    return render(
        request,
        "review/conversations.html",
        {
            "rows": listing.rows,
            "channels": Channel.objects.order_by("name"),
            "tags": Tag.objects.all(),
            "filters": request.GET,
            "next_query": next_query if listing.next_cursor else "",
        },
    )


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
    pk = whole_number(request.GET.get(name, ""))
    if pk is None:
        return None
    return get_object_or_404(
        access.messages_for_user(request).select_related("entry", "sender"),
        pk=pk,
        conversation_id=conversation_pk,
    )


def _name(conversation: Conversation) -> str:
    if conversation.participant_id is None:
        return ""
    return latest_names({conversation.participant_id}).get(conversation.participant_id, "")


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
    form = search.SearchForm(request.GET or None, user=request.user)
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
        status=400 if form.is_bound and form.errors else 200,
    )


@role_required
@require_POST
def save_search(request: HttpRequest) -> HttpResponse:
    access.saved_searches_for_user(request)
    form = SavedSearchForm(request.POST, user=request.user)
    if not form.is_valid():
        notices.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect(_search_url())
    name, query = form.cleaned_data["name"], form.cleaned_data["query"]
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
    return reverse("review:search")


@role_required
@require_GET
def leave(request: HttpRequest) -> HttpResponse:
    """A link a client wrote is never followed by accident: this page shows it in full first."""
    access.require(request, access.READ)
    target = request.GET.get("to", "")
    try:
        parts = urlsplit(target)
    except ValueError:  # an unbalanced "[" (an IPv6 address cut short)
        return HttpResponseBadRequest("That is not a valid link.")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return HttpResponseBadRequest("Only http and https links can be opened.")
    return render(request, "review/leave.html", {"target": target, "host": parts.hostname})
