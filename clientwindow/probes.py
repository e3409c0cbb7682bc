"""Health endpoints for load balancers and monitoring: /healthz (liveness) and /readyz (readiness).

Both are open to anyone, so they answer the same to everyone and say nothing about the archive's
contents: check names and short reason words, never counts, names or ids. /readyz fails on
conditions every instance shares (the backlog, a broken archive); deploy/README.md says where each
belongs ("Health checks").
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from archive.models import VerificationRun
from messaging.health import check_backlog

# Each statement of a readiness check; a database slower than this is not ready.
STATEMENT_TIMEOUT = "2s"
# Verification runs daily (archive/schedules.py); two days without one is worth saying.
VERIFICATION_STALE_AFTER = timedelta(days=2)


@dataclass(frozen=True)
class Check:
    ok: bool
    reason: str = ""

    def as_json(self) -> dict[str, str]:
        answer = {"status": "ok" if self.ok else "failing"}
        return {**answer, "reason": self.reason} if self.reason else answer


# csrf_exempt: they take no writes (GET and HEAD only), so a POST is told 405, not a CSRF 403
@csrf_exempt
@require_safe
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers; nothing else is looked at (no database)."""
    return HttpResponse("ok\n", content_type="text/plain; charset=utf-8")


@csrf_exempt
@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness()
    ready = all(check.ok for check in checks.values())
    body = {
        "status": "ok" if ready else "failing",
        "checks": {name: check.as_json() for name, check in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)


def readiness() -> dict[str, Check]:
    """The database answers, the backlog is under its alarm, the last verification found the
    archive intact. Every statement is bounded by STATEMENT_TIMEOUT."""
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [STATEMENT_TIMEOUT]
                )
                cursor.execute("SELECT 1")
            return {
                "database": Check(ok=True),
                "backlog": _backlog(),
                "verification": _verification(),
            }
    except DatabaseError:
        unknown = Check(ok=False, reason="not checked")
        return {
            "database": Check(ok=False, reason="unavailable"),
            "backlog": unknown,
            "verification": unknown,
        }


def _backlog() -> Check:
    # check_backlog also raises the alarm (and logs it once) if this is the first to see it
    return Check(ok=False, reason="over alarm threshold") if check_backlog() else Check(ok=True)


def _verification() -> Check:
    last = VerificationRun.objects.order_by("-finished_at").only("intact", "finished_at").first()
    if last is None:
        return Check(ok=True, reason="not run yet")
    if not last.intact:
        return Check(ok=False, reason="archive broken")
    if timezone.now() - last.finished_at > VERIFICATION_STALE_AFTER:
        # still ready: a late verification says nothing wrong was found, only that nobody looked
        return Check(ok=True, reason="stale")
    return Check(ok=True)
