"""Schemathesis over every operation of /api/schema/, with a token of each role, against the
portal on a loopback socket (tests/api/loopback.py) holding the review tests' world.

Each operation gets generated requests that fit its schema (POSITIVE) and requests that break
it (NEGATIVE: wrong types, missing fields, out-of-range values...). Every response must be no
server error, with a status, content type and body the schema declares. All operations are
tried before the test fails, and the failure lists each operation's first falsifying request.

A stateful run follows the links schemathesis infers between operations (a hold created, then
read and released; an export requested, then read), which random ids would rarely reach.

Bounded and reproducible: MAX_EXAMPLES requests per operation and mode, `derandomize=True` (a
seed derived from the test itself, so CI sees the same requests each run), no example database,
no deadline (a slow PostgreSQL is not a finding). State-changing operations run inside the
test's transaction, rolled back afterwards, so they leave nothing behind for the next run.
"""

from typing import Any

import pytest
import requests
import schemathesis
from django.contrib.auth.models import User
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clientwindow.tokens import new_token
from tests.api.conftest import World
from tests.api.loopback import loopback_server

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 25
STATEFUL_EXAMPLES, STATEFUL_STEPS = 25, 6  # scenarios, and calls in each
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


class Hurried:
    """The long polls' clock (api/feed.py, api/events.py): each look at it is a second later and
    a sleep takes no time, so `wait=30` with nothing new ends at once instead of in 30 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now

    def sleep(self, seconds: float) -> None:
        pass


@pytest.fixture
def hurried(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("api.feed", "api.events"):
        monkeypatch.setattr(f"{module}.time", Hurried(), raising=False)


def _schema(base_url: str, token: str) -> Any:
    return schemathesis.openapi.from_url(
        f"{base_url}/api/schema/", headers={"Authorization": f"Bearer {token}"}
    )


def _falsified(operation: Any, mode: Any, base_url: str, token: str) -> str | None:
    """The first request of this operation and mode that fails a check, described; or None."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}

    @BOUNDED
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, session=session, headers=headers, checks=CHECKS)

    try:
        run()
    except (Exception, schemathesis.errors.FailureGroup) as error:  # collected, then all shown
        return f"{operation.label} [{mode.value}]: {error}"
    return None


@pytest.mark.parametrize("role", ["reviewer", "auditor", "legal", "admin_user"])
def test_every_operation_conforms_for_each_role(
    role: str, world: World, hurried: None, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(role)
    token = new_token(user, "schemathesis", 1)[1]
    with loopback_server() as base_url:
        schema = _schema(base_url, token)
        operations = [result.ok() for result in schema.get_all_operations()]
        failures = [
            failure
            for operation in operations
            for mode in MODES
            if (failure := _falsified(operation, mode, base_url, token)) is not None
        ]

    assert len(operations) >= 4  # the schema was read, not an empty one
    assert failures == [], "\n\n".join(failures)


@pytest.mark.parametrize("role", ["legal", "admin_user"])  # those who create and release
def test_linked_operations_conform(
    role: str, world: World, hurried: None, request: pytest.FixtureRequest
) -> None:
    token = new_token(request.getfixturevalue(role), "schemathesis", 1)[1]
    with loopback_server() as base_url:
        schema = _schema(base_url, token)
        machine = schema.as_state_machine()
        headers = {"Authorization": f"Bearer {token}"}

        class Linked(machine):  # type: ignore[misc, valid-type]
            def get_call_kwargs(self, case: Any) -> dict[str, Any]:
                return {"base_url": base_url, "headers": headers}

            def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

        assert len(Linked.bundles) > 0, "no links between operations: nothing stateful to run"
        Linked.run(
            settings=settings(
                BOUNDED, max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS
            )
        )
