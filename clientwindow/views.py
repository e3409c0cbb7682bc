"""The home page and the public verifier key."""

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import render
from django.templatetags.static import static

from access.roles import ADMINISTRATOR, role_required, roles_of
from archive import checkpoints, status
from messaging.health import ingestion_health
from review import dashboard


@role_required
def home(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {"integrity": status.integrity_summary()}
    if request.user.has_perm("review.read_archive"):
        context["dashboard"] = dashboard.dashboard()
    if ADMINISTRATOR in roles_of(request.user):
        context["health"] = ingestion_health()
    if request.user.has_perm("archive.view_evidence"):
        context["verifier_key"] = checkpoints.verifier_key_text()
    return render(request, "home.html", context)


@role_required
def public_key(request: HttpRequest) -> HttpResponse:
    """The verifier key as text, for scripts; any role may fetch it."""
    text = f"{checkpoints.verifier_key_text()}\n\n{checkpoints.public_key_pem()}"
    return HttpResponse(text, content_type="text/plain; charset=utf-8")


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever a page links; send them to ours, not to a 404."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))
