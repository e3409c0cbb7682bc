"""The archive in the browser: the conversation list, transcripts and what a reviewer does on
them (tags, flags), media, search and saved searches. The review queue is review/queue_views.py.

Each view: access helper → form → one domain call → render or redirect. Every transcript view,
search and media download is recorded as an access event. The tag and flag POSTs answer htmx
with the fragment that changed and plain browsers with a redirect back.
"""

import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.contrib import messages as notices
from django.core.exceptions import ValidationError
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from access.boundary import whole_number
from access.roles import role_required
from archive.objectstore import Corrupt, Missing, StoreError
from messaging.media import open_media
from messaging.models import Channel, Conversation, Message
from messaging.participants import latest_names
from review import (
    access,
    conversation_list,
    flags,
    provenance,
    saved_searches,
    search,
    tags,
    transcript,
)
from review.forms import (
    ConversationFilters,
    FlagForm,
    SavedSearchForm,
    TagForm,
    bad_request,
    form_problems,
    refusal,
)
from review.models import AccessEvent, ConversationTag, Flag, Tag

logger = logging.getLogger(__name__)

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
        return provenance.chat_name(conversation)  # "" for a captured group
    return latest_names({conversation.participant_id}).get(conversation.participant_id, "")


# --- tags and flags, from the transcript --------------------------------------------------------


@role_required
@require_POST
def tag_conversation(request: HttpRequest, pk: int) -> HttpResponse:
    convo = access.conversation_for_user(request, pk, access.TAG)
    form = _tag_form(request)
    user = access.acting_user(request)
    applied = tags.set_tag(convo, form.cleaned_data["tag"], user, applied=form.applies)
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
    form = _tag_form(request)
    user = access.acting_user(request)
    applied = tags.set_tag(message, form.cleaned_data["tag"], user, applied=form.applies)
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request,
            "review/transcript.html#message-tags",
            {"message": message, "applied": applied, "tags": Tag.objects.all()},
        )
    return redirect(_at(message))


def _tag_form(request: HttpRequest) -> TagForm:
    form = TagForm(request.POST)
    if not form.is_valid():
        raise Http404(form_problems(form))
    return form


@role_required
@require_POST
def flag_message(request: HttpRequest, pk: int) -> HttpResponse:
    message = access.message_for_user(request, pk, access.RAISE)
    _raise_flag(request, message.conversation, message)
    return redirect(_at(message))


@role_required
@require_POST
def flag_conversation(request: HttpRequest, pk: int) -> HttpResponse:
    convo = access.conversation_for_user(request, pk, access.RAISE)
    _raise_flag(request, convo, None)
    return redirect("review:conversation", pk=convo.pk)


def _raise_flag(request: HttpRequest, convo: Conversation, message: Message | None) -> None:
    """Raise a flag from the posted note; a notice says what happened."""
    form = FlagForm(request.POST)
    if not form.is_valid():
        notices.error(request, form_problems(form))
        return
    user = access.acting_user(request)
    try:
        flag = flags.raise_flag(user, convo, message, form.cleaned_data["note"])
    except ValidationError as error:
        notices.error(request, refusal(error))
        return
    notices.success(request, f"Flag {flag.pk} raised for review.")


def _at(message: Any) -> str:
    url = reverse("review:conversation", args=[message.conversation_id])
    return f"{url}?at={message.pk}#m{message.pk}"


@role_required
@require_GET
def media(request: HttpRequest, pk: int) -> HttpResponseBase:
    return serve_media(request, pk)


def serve_media(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Message `pk`'s stored media file, for a user with a role (the portal's page above, and
    the API's GET /api/v1/messages/{id}/media/). Images, audio and video of safe types are
    shown inline; anything else (an SVG, HTML, a PDF) is a download, and never sniffed. Bytes
    that do not match their sealed SHA-256, or missing from the store, are never served (500,
    an administrator must look); a store that cannot be reached is a 503 to try again. Only a
    file served is an access event."""
    attachment = access.attachment_for_user(request, pk)
    stored = attachment.file
    assert stored is not None  # a STORED attachment always has its file
    try:
        content = open_media(stored)
    except Corrupt:
        logger.error(
            "media file %s of message %s does not match its sealed SHA-256: not served",
            stored.pk,
            attachment.message_id,
        )
        return _media_problem(MEDIA_CORRUPT, 500)
    except Missing:
        logger.error(
            "media file %s of message %s is missing from the records store",
            stored.pk,
            attachment.message_id,
        )
        return _media_problem(MEDIA_MISSING, 500)
    except StoreError as problem:
        logger.error("media file %s: the records store cannot be read: %s", stored.pk, problem)
        busy = _media_problem(MEDIA_UNREACHABLE, 503)
        busy["Retry-After"] = "60"
        return busy
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
        content,
        as_attachment=not inline,
        filename=filename,
        content_type=mime if inline else "application/octet-stream",
    )
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


MEDIA_CORRUPT = (
    "This file is withheld: the stored file does not match the SHA-256 sealed when it was "
    "archived. An administrator must look (the server log names the file).\n"
)
MEDIA_MISSING = (
    "This file is missing from the storage that should hold it. An administrator must look "
    "(the server log names the file).\n"
)
MEDIA_UNREACHABLE = "The storage holding this file cannot be reached; try again shortly.\n"


def _media_problem(text: str, status: int) -> HttpResponse:
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
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
    lists = access.search_lists_for_user(request)
    form = search.SearchForm(request.GET or None, user=request.user, lists=lists)
    query = request.GET.copy()
    query.pop("page", None)
    context: dict[str, Any] = {
        "form": form,
        "results": None,
        "query_string": query.urlencode(),
        "saved": lists.saved,
    }
    if not (form.is_bound and form.is_valid()):
        status = 400 if form.is_bound else 200
        return render(request, "review/search.html", context, status=status)
    results = context["results"] = search.search(messages, form.cleaned_data)
    event = {
        "query": form.cleaned_data.get("q") or "",
        "filters": {
            k: str(v.pk if hasattr(v, "pk") else v)
            for k, v in form.cleaned_data.items()
            if v not in (None, "", False, "newest") and k not in ("q", "page")
        },
        "results": results.total,
        "more": results.capped,  # "more than `results`": counting stopped there
    }
    # the event's round trip and commit overlap the template, which reads nothing more once
    # the form's lists are read; the page leaves only once the event is committed
    form.read_choices()
    with access.recording(request, AccessEvent.Action.SEARCH, detail=event):
        return render(request, "review/search.html", context)


@role_required
@require_GET
def search_count(request: HttpRequest) -> HttpResponse:
    """The heading of a search page that did not know its total (Results.counting), counted
    within search.COUNT_LATER_BUDGET_MS; the page asks for it once shown (htmx).

    No access event: it shows no message, and the page's event records the search itself."""
    messages = access.messages_for_user(request)
    form = search.SearchForm(request.GET, user=request.user)
    if not form.is_valid():
        return HttpResponse("Not a search this page could have made.\n", status=400)
    counted = search.count(messages, form.cleaned_data)
    if counted is None:  # still too long: "more than" what the page had seen (it says how many)
        total, capped = search.shown(whole_number(request.GET.get("seen", "")) or 0, counted=False)
    else:
        total, capped = search.shown(counted)
    return render(
        request,
        "review/_hits_title.html",
        {"total": total, "capped": capped, "unknown": counted is None},
    )


@role_required
@require_POST
def save_search(request: HttpRequest) -> HttpResponse:
    access.saved_searches_for_user(request)
    form = SavedSearchForm(request.POST, user=request.user)
    if not form.is_valid():
        notices.error(request, form_problems(form))
        return redirect(_search_url())
    name, query = form.cleaned_data["name"], form.cleaned_data["query"]
    try:
        saved_searches.save(access.acting_user(request), name, query)
    except ValidationError as refused:
        notices.error(request, refusal(refused))
    else:
        notices.success(request, f"Saved the search “{name}”.")
    return redirect(f"{_search_url()}?{query}")


@role_required
@require_POST
def delete_saved_search(request: HttpRequest, pk: int) -> HttpResponse:
    saved = get_object_or_404(access.saved_searches_for_user(request), pk=pk)
    saved_searches.delete(saved)
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
