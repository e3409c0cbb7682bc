from collections.abc import Callable
from functools import wraps
from typing import Any

from anymail import urls as anymail_urls
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, include, path
from django.views.decorators.csrf import csrf_exempt

from bridge import views

app_name = "bridge"


def _when_configured(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A provider's inbound webhook exists only once its secret is configured (404 otherwise):
    nothing unauthenticated can post a "reply" (anymail checks the secret on every request)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.ANYMAIL.get("WEBHOOK_SECRET"):
            raise Http404("inbound email webhooks are not configured")
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
