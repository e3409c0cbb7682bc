import base64
import binascii
import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from anymail import urls as anymail_urls
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.test.utils import override_settings
from django.urls import URLPattern, include, path
from django.views.decorators.csrf import csrf_exempt

from bridge import views

app_name = "bridge"


def _authorized(request: HttpRequest, secret: str) -> bool:
    scheme, _, encoded = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, secret.encode())


def _when_configured(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A provider's inbound webhook exists only once its secret is configured (404 otherwise).
    The basic-auth secret is checked before the body is read (anymail checks it again, and the
    provider's signature where there is one); an authenticated request may then be as large as a
    reply email may be (MAIL_MAX_BYTES, base64-encoded), not Django's 2.5 MB default."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        secret = settings.ANYMAIL.get("WEBHOOK_SECRET")
        if not secret:
            raise Http404("inbound email webhooks are not configured")
        if not _authorized(request, secret):
            response = HttpResponse("authentication required", status=401)
            response["WWW-Authenticate"] = 'Basic realm="ClientWindow inbound email"'
            return response
        limit = settings.MAIL_MAX_BYTES * 4 // 3 + 1024 * 1024
        with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=limit):
            return view(request, *args, **kwargs)

    return csrf_exempt(wrapper)


# django-anymail's inbound webhooks only (its tracking webhooks are of no use here):
# /email/inbound/<provider>/inbound/
inbound_webhooks = [
    URLPattern(p.pattern, _when_configured(p.callback), p.default_args, p.name)
    for p in anymail_urls.urlpatterns
    if isinstance(p, URLPattern) and (p.name or "").endswith("_inbound_webhook")
]

urlpatterns = [
    path("conversations/<int:pk>/reply/", views.reply, name="reply"),
    path("bridge/reconciliation/", views.reconciliation, name="reconciliation"),
    path("bridge/notifications/<int:pk>/retry/", views.retry, name="retry"),
    path("email/inbound/", include(inbound_webhooks)),
]
