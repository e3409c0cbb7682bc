"""Export scopes as a person asks for them: what each user may ask for."""

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from exports.models import Export
from retention import holds
from retention.holds import HoldScope
from tests.review.conftest import World, world

__all__ = ["world"]
URL = "/api/v1/exports/"


@pytest.fixture
def exporting_reviewer(make_user: Any) -> Any:
    """A reviewer an administrator allowed to export (but who may not see legal holds)."""
    user = make_user("rex", "Reviewer")
    user.user_permissions.add(Permission.objects.get(codename="create_export"))
    return user


def test_a_hold_scope_the_user_may_not_see_answers_like_a_missing_hold(
    client: Any, world: World, legal: Any, exporting_reviewer: Any, settings: Any, tmp_path: Path
) -> None:
    settings.EXPORT_ROOT = tmp_path
    hold = holds.create(
        legal,
        matter="Doe v Bank",
        reason="Claim received",
        scope=HoldScope.build(conversations=[world.amelia.pk]),
    )

    def ask(hold_id: int, kind: str = "hold") -> Any:
        scope = {"kind": "hold", "hold": hold_id}
        if kind == "search":
            scope = {"kind": "search", "query": {"hold": str(hold_id)}}
        return client.post(URL, {"format": "csv", "scope": scope}, content_type="application/json")

    client.force_login(exporting_reviewer)
    for kind in ("hold", "search"):
        held, missing = ask(hold.pk, kind), ask(987654, kind)
        assert held.status_code == missing.status_code == 400, kind
        assert held.json() == missing.json(), kind
    portal = client.post(
        reverse("exports:create"), {"scope": "hold", "hold": hold.pk, "format": "csv"}
    )
    assert portal.status_code == 400 and "no such legal hold" in portal.content.decode()
    assert not Export.objects.exists()
    client.force_login(legal)
    assert ask(hold.pk).status_code == ask(hold.pk, "search").status_code == 201
