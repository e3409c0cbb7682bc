"""Who may import phone chat exports and see the import jobs: the one access helper of the
imports app, used by its views and nobody else (STYLE.md).

Legal and Administrators hold `imports.import_chat`; anyone else imports only when an
administrator gives them that permission (per user, in the admin). Importing also needs
`review.read_archive`: the preview shows the messages of the file, and the import's result is
read in the transcript. Everyone sees their own imports; Administrators
(`imports.view_importjob`) see everyone's. Anybody else's import is a 404, so that its existence
is not disclosed.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from messaging.models import Conversation, Participant
from review.access import READ

from .models import ImportJob

IMPORT = "imports.import_chat"
SEE_ALL = "imports.view_importjob"
MAPPABLE = 2000  # participants offered in the author mapping's list


def require_import(request: HttpRequest) -> None:
    user: Any = request.user
    if not (user.is_authenticated and user.has_perm(READ) and user.has_perm(IMPORT)):
        raise PermissionDenied("Your role does not allow importing chat exports (import_chat).")


def jobs_for_user(request: HttpRequest) -> QuerySet[ImportJob]:
    require_import(request)
    user: Any = request.user
    jobs = ImportJob.objects.select_related("export", "export__channel", "created_by")
    return jobs if user.has_perm(SEE_ALL) else jobs.filter(created_by_id=user.pk)


def job_for_user(request: HttpRequest, pk: object) -> ImportJob:
    return get_object_or_404(jobs_for_user(request), pk=pk)


def participants_for_mapping(request: HttpRequest, job: ImportJob) -> QuerySet[Participant]:
    """The participants an author of `job` may be mapped to: those with a one-to-one
    conversation on the job's channel (anyone else is mapped by number)."""
    require_import(request)
    chats = Conversation.objects.filter(channel_id=job.export.channel_id, participant__isnull=False)
    return Participant.objects.filter(pk__in=chats.values("participant_id")).order_by("wa_id")[
        :MAPPABLE
    ]
