"""Response headers every page needs: `Cache-Control: no-store` on whatever may carry client
content, so that no browser, proxy or shared computer keeps a copy of it.

That is every response to a logged-in user, and every API response (token clients are
authenticated by DRF inside the view, after this middleware has looked). A view that sets its
own Cache-Control keeps it (the downloads already say `private, no-store`). Static files never
get here: WhiteNoise answers them earlier in MIDDLEWARE.
"""

from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase

API_PREFIX = "/api/"  # clientwindow/urls.py
NO_STORE = "private, no-store"


def no_store(
    get_response: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[[HttpRequest], HttpResponseBase]:
    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        if response.has_header("Cache-Control"):
            return response
        user = getattr(request, "user", None)
        if request.path.startswith(API_PREFIX) or (user is not None and user.is_authenticated):
            response["Cache-Control"] = NO_STORE
        return response

    return middleware
