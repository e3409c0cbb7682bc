"""The edge of the upload page: a chat export over CHAT_IMPORT_MAX_BYTES is refused (413) from
its Content-Length before a byte of the body is read, and one within it streams to a temporary
file, never into memory.

A middleware, placed before access/boundary.py's RefuseMalformedInput: that one reads a multipart
body to check its fields (and CSRF reads it after), so a view would come too late for both.
"""

from collections.abc import Callable

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from .forms import too_large


class ChatUploadLimit:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path_info == reverse("imports:create"):
            if not request.META.get("CONTENT_LENGTH"):
                # a chunked body's size is known only once it has been received, and the server
                # never reads past a declared length: so a length is what bounds the upload
                return _plain("An upload needs a Content-Length (send it unchunked).", 411)
            try:
                declared = int(request.META["CONTENT_LENGTH"])
            except ValueError:
                return _plain("Bad request: the Content-Length is not a number.", 400)
            # the form's other fields and the multipart framing are a few kilobytes at most
            if declared > settings.CHAT_IMPORT_MAX_BYTES + 64 * 1024:
                return _plain(f"{too_large()} Nothing was stored.", 413)
            request.upload_handlers = [TemporaryFileUploadHandler(request)]
        return self.get_response(request)


def _plain(text: str, status: int) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
