"""imports/access.py: an import job is seen by its owner, by those permitted to see every job
(Administrators), and by nobody else; importing at all needs `imports.import_chat`."""

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import RequestFactory

from imports.access import job_for_user, jobs_for_user, participants_for_mapping, require_import
from imports.models import ImportJob
from messaging.models import Channel
from tests.imports.test_views import channel, make_job

__all__ = ["channel"]


def asking(user: Any) -> Any:
    request = RequestFactory().get("/imports/")
    request.user = user
    return request


@pytest.fixture
def job(channel: Channel, legal: Any) -> ImportJob:
    return make_job(channel, legal)


def test_it_lets_the_owner_see_their_import(job: ImportJob, legal: Any) -> None:
    assert job_for_user(asking(legal), job.pk) == job
    assert list(jobs_for_user(asking(legal))) == [job]


def test_it_lets_an_administrator_see_every_import(job: ImportJob, admin_user: Any) -> None:
    assert job_for_user(asking(admin_user), job.pk) == job


def test_it_lets_a_permitted_reviewer_import_but_see_only_their_own(
    job: ImportJob, reviewer: Any
) -> None:
    reviewer.user_permissions.add(Permission.objects.get(codename="import_chat"))
    require_import(asking(reviewer))
    assert not jobs_for_user(asking(reviewer)).exists()
    with pytest.raises(Http404):
        job_for_user(asking(reviewer), job.pk)


def test_it_hides_an_import_from_another_legal_user(job: ImportJob, make_user: Any) -> None:
    with pytest.raises(Http404):
        job_for_user(asking(make_user("lou", "Legal")), job.pk)


@pytest.mark.parametrize("who", ["outsider", "reviewer", "auditor"])
def test_it_refuses_outsiders(job: ImportJob, who: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(who)
    with pytest.raises(PermissionDenied):
        job_for_user(asking(user), job.pk)
    with pytest.raises(PermissionDenied):
        participants_for_mapping(asking(user), job)
