"""A legal hold's matter is an export scope: the portal, the API and the command take it."""

from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from exports.models import Export
from exports.scope import Scope
from messaging.summaries import ANNOTATION_TYPES
from retention import holds
from retention.holds import HoldScope
from tests.review.conftest import World, world

__all__ = ["world"]


@pytest.fixture
def hold(world: World, legal: Any) -> Any:
    return holds.create(
        legal,
        matter="Doe v Bank",
        reason="Claim received",
        scope=HoldScope.build(conversations=[world.amelia.pk]),
    )


def test_the_scope_is_exactly_the_held_messages(hold: Any, world: World) -> None:
    scope = Scope.requested("hold", hold=hold.pk)
    assert Scope.from_json(scope.to_json()) == scope
    assert scope.label() == "legal hold “Doe v Bank”"
    expected = set(
        world.amelia.messages.exclude(type__in=ANNOTATION_TYPES).values_list("pk", flat=True)
    )
    assert expected and set(scope.messages().values_list("pk", flat=True)) == expected


def test_an_unknown_hold_is_refused_with_a_reason(db: None) -> None:
    with pytest.raises(ValidationError, match="no such legal hold"):
        Scope.requested("hold", hold=987654)


def test_the_portal_and_the_api_take_a_hold(client: Any, hold: Any, legal: Any) -> None:
    client.force_login(legal)
    response = client.post(
        reverse("exports:create"), {"scope": "hold", "hold": hold.pk, "format": "csv"}
    )
    assert response.status_code == 302
    assert Export.objects.get().scope == {"hold": hold.pk, "kind": "hold"}
    api = client.post(
        "/api/v1/exports/",
        {"format": "csv", "scope": {"kind": "hold", "hold": hold.pk}},
        content_type="application/json",
    )
    assert api.status_code == 201, api.content
    missing = client.post(
        "/api/v1/exports/",
        {"format": "csv", "scope": {"kind": "hold", "hold": 987654}},
        content_type="application/json",
    )
    assert missing.status_code == 400 and b"no such legal hold" in missing.content


def test_the_command_exports_a_matter(hold: Any, tmp_path: Path, settings: Any) -> None:
    settings.EXPORT_ROOT = tmp_path / "exports"
    output = tmp_path / "matter.csv"
    call_command("export", "--hold", "Doe v Bank", "--format", "csv", "--output", str(output))
    assert output.read_bytes().count(b"\r\n") > 2
    with pytest.raises(CommandError, match="no legal hold"):
        call_command("export", "--hold", "Nope", "--format", "csv", "--output", str(tmp_path / "x"))
