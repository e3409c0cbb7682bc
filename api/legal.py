"""Legal holds, retention policies and dispositions (`/api/v1/holds/`, `/retention-policies/`,
`/dispositions/`): what the retention pages show and do, for an e-discovery platform.

The same checked access functions (retention/access.py), permissions and domain calls as the
portal: a hold is created and released by retention/holds.py, which seals each in the ledger
exactly as the portal's form does. Like those pages, these show no message content, so nothing
is written to the access log.
"""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import QueryDict
from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from access import boundary
from access.roles import HasRole
from access.sessions import signed_in_recently
from retention import holds
from retention.access import (
    MANAGE_HOLDS,
    dispositions_for_user,
    hold_for_user,
    holds_for_user,
    policies_for_user,
)
from retention.forms import phone_numbers
from retention.models import LegalHold
from retention.views_support import (
    channels_under_default,
    hold_item_kinds,
    policy_rows,
    scope_of,
    with_files_waiting,
)
from review.access import acting_user, require, saved_searches_for_user
from review.search import SearchForm, parameter_names

from . import pages

ALLOWED = [IsAuthenticated, HasRole]


# --- holds ------------------------------------------------------------------------------------


class HoldScopeSerializer(serializers.Serializer[Any]):
    """What a hold covers, as stored and sealed (retention/holds.py HoldScope)."""

    conversations = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=pages.MAX_SEQ),
        required=False,
        max_length=10_000,
        help_text="Conversation ids: every message in them.",
    )
    participants = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        max_length=10_000,
        help_text="WhatsApp numbers (digits; at least 6): every conversation with them and "
        "every message they sent.",
    )
    query = serializers.DictField(
        child=serializers.CharField(max_length=500),
        required=False,
        help_text="Search page parameters (q, channel, participant, direction, type, "
        "date_from, date_to, tag, flag, attachment…): every message the search finds.",
    )
    date_from = boundary.api_date_field(
        required=False, help_text="Only messages sent on or after this day."
    )
    date_to = boundary.api_date_field(
        required=False, help_text="Only messages sent on or before this day."
    )


class HoldScopeRequestSerializer(HoldScopeSerializer):
    """A new hold's scope: the portal's form, with a search given by its parameters or by one
    of the user's saved searches."""

    saved_search = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=pages.MAX_SEQ,
        help_text="The id of one of your saved searches (instead of `query`).",
    )

    def validate_participants(self, numbers: list[str]) -> list[str]:
        for number in numbers:
            try:
                if len(phone_numbers(number)) != 1:
                    raise DjangoValidationError(f"“{number}” is not a WhatsApp number.")
            except DjangoValidationError as problem:
                raise ValidationError(problem.messages) from problem
        return numbers

    def validate_query(self, query: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(query) - (parameter_names() - {"page"}))
        if unknown:
            raise ValidationError(f"“{unknown[0][:40]}” is not a search parameter.")
        form = SearchForm(query, user=self.context["request"].user)
        if not form.is_valid():
            raise ValidationError(
                [f"{name}: {' '.join(map(str, why))}" for name, why in form.errors.items()]
            )
        return query

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "query" in data and "saved_search" in data:
            raise ValidationError({"saved_search": ["Give a saved search or a query, not both."]})
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise ValidationError({"date_to": ["The end date is before the start date."]})
        return data


class HoldRequestSerializer(serializers.Serializer[Any]):
    matter = serializers.CharField(max_length=200, help_text="The matter's name (unique).")
    matter_number = serializers.CharField(
        max_length=100, required=False, default="", allow_blank=True, help_text="Its number."
    )
    reason = serializers.CharField(max_length=5_000, help_text="Why the hold is placed (sealed).")
    custodians = serializers.CharField(
        max_length=20_000,
        required=False,
        default="",
        allow_blank=True,
        help_text="The people it concerns, one per line.",
    )
    scope = HoldScopeRequestSerializer(help_text="What it covers: at least one of its parts.")


class HoldReleaseSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=1_000, help_text="Why the hold ends (sealed).")


class HoldSerializer(serializers.Serializer[LegalHold]):
    id = serializers.IntegerField(help_text="The hold's id.")
    matter = serializers.CharField(help_text="The matter's name.")
    matter_number = serializers.CharField(help_text="The matter's number; may be empty.")
    reason = serializers.CharField(help_text="Why the hold was placed.")
    custodians = serializers.CharField(help_text="The people it concerns, one per line.")
    scope = HoldScopeSerializer(help_text="What it covers, as sealed.")
    created_by = serializers.CharField(
        source="created_by.username", allow_null=True, help_text="Who created it."
    )
    created_at = serializers.DateTimeField(help_text="When it was created.")
    refreshed_at = serializers.DateTimeField(
        allow_null=True, help_text="When what it covers was last brought up to date."
    )
    active = serializers.BooleanField(help_text="True until it is released.")
    released_at = serializers.DateTimeField(allow_null=True, help_text="When it was released.")
    released_by = serializers.CharField(
        source="released_by.username", allow_null=True, help_text="Who released it."
    )
    release_reason = serializers.CharField(help_text="Why it was released; empty while active.")
    messages_held = serializers.SerializerMethodField(help_text="How many messages it covers.")

    @extend_schema_field(OpenApiTypes.INT)
    def get_messages_held(self, hold: LegalHold) -> int:
        return int(self.context["counts"].get(hold.pk, 0))


class CoveredKindSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField(help_text="A ledger kind: message, message.status, media.file…")
    count = serializers.IntegerField(help_text="How many entries of it the hold covers.")


class HoldDetailSerializer(HoldSerializer):
    # Only here: reading a scope checks that its conversations exist (a query per hold).
    scope_label = serializers.CharField(
        help_text="The scope in words; empty if the stored scope no longer passes the checks."
    )
    covers = CoveredKindSerializer(many=True, help_text="What it covers, by ledger kind.")


def _detail(hold: LegalHold, status: int = 200) -> Response:
    shown = HoldSerializer(hold, context={"counts": holds.message_counts([hold])}).data
    scope = scope_of(hold)
    covers = [{"kind": kind, "count": n} for kind, n in hold_item_kinds(hold)]
    label = scope.label() if scope else ""
    return Response({**shown, "scope_label": label, "covers": covers}, status=status)


@extend_schema(
    methods=["GET"],
    operation_id="holds_list",
    summary="Legal holds, oldest first",
    parameters=pages.parameters("The `cursor` of the previous page (a hold id)."),
    responses=pages.envelope("HoldPage", HoldSerializer(many=True)),
)
@extend_schema(
    methods=["POST"],
    operation_id="holds_create",
    summary="Place a legal hold (sealed in the ledger)",
    request=HoldRequestSerializer,
    responses={201: HoldDetailSerializer},
)
@api_view(["GET", "POST"])
@permission_classes(ALLOWED)
def hold_list(request: Request) -> Response:
    if request.method == "POST":
        return _create(request)
    limit, after = pages.limit_of(request), pages.after_seq(request)
    listed = list(holds_for_user(request).filter(pk__gt=after).order_by("pk")[:limit])
    counts = holds.message_counts(listed)
    many: Any = HoldSerializer  # many=True makes a list serializer, which django-stubs miss
    results = many(listed, many=True, context={"counts": counts}).data
    cursor = str(listed[-1].pk) if listed else (str(after) if after >= 0 else None)
    return pages.page(request, results, cursor, len(listed) == limit)


def _recently_signed_in(request: Request) -> None:
    """The portal asks a person to confirm who they are before a hold changes; through the API
    a session must be as fresh (a token was issued after that confirmation)."""
    if isinstance(request.successful_authenticator, SessionAuthentication) and not (
        signed_in_recently(request)
    ):
        raise PermissionDenied(
            "Confirm your identity first: sign in to the portal again, or use an API token."
        )


def _create(request: Request) -> Response:
    require(request, MANAGE_HOLDS)
    _recently_signed_in(request)
    payload = HoldRequestSerializer(data=request.data, context={"request": request})
    payload.is_valid(raise_exception=True)
    data = payload.validated_data
    scope = _scope(request, data["scope"])
    try:
        hold = holds.create(
            acting_user(request),
            matter=data["matter"],
            reason=data["reason"],
            scope=scope,
            matter_number=data["matter_number"],
            custodians=data["custodians"],
        )
    except DjangoValidationError as problem:  # a matter already held, or a blank name
        raise ValidationError({"matter": problem.messages}) from problem
    return _detail(hold, status=201)


def _scope(request: Request, data: dict[str, Any]) -> holds.HoldScope:
    """The validated scope (as the portal's form builds it), or a 400 naming what is wrong."""
    query = data.get("query")
    if "saved_search" in data:
        saved = saved_searches_for_user(request).filter(pk=data["saved_search"]).first()
        if saved is None:
            problem = f"You have no saved search {data['saved_search']}."
            raise ValidationError({"scope": {"saved_search": [problem]}})
        query = QueryDict(saved.query).dict()
    try:
        return holds.HoldScope.build(
            conversations=data.get("conversations") or [],
            participants=data.get("participants") or [],
            query=query,
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )
    except DjangoValidationError as problem:
        raise ValidationError({"scope": problem.messages}) from problem


@extend_schema(
    operation_id="holds_retrieve",
    summary="A legal hold, with what it covers",
    responses=HoldDetailSerializer,
)
@api_view(["GET"])
@permission_classes(ALLOWED)
def hold_detail(request: Request, pk: int) -> Response:
    return _detail(hold_for_user(request, pk))


@extend_schema(
    operation_id="holds_release",
    summary="Release a legal hold (sealed in the ledger)",
    request=HoldReleaseSerializer,
    responses=HoldDetailSerializer,
)
@api_view(["POST"])
@permission_classes(ALLOWED)
def hold_release(request: Request, pk: int) -> Response:
    hold = hold_for_user(request, pk, MANAGE_HOLDS)
    _recently_signed_in(request)
    payload = HoldReleaseSerializer(data=request.data)
    payload.is_valid(raise_exception=True)
    try:
        released = holds.release(hold, acting_user(request), payload.validated_data["reason"])
    except DjangoValidationError as problem:  # already released
        raise ValidationError({"reason": problem.messages}) from problem
    return _detail(released)


# --- retention policies -----------------------------------------------------------------------


class PolicyChannelSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The channel's id.")
    name = serializers.CharField(help_text="The channel's name.")
    display_number = serializers.CharField(help_text="Its WhatsApp number as shown; may be empty.")


class PolicySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="policy.id", help_text="The policy's id.")
    name = serializers.CharField(source="policy.name", help_text="The policy's name.")
    days = serializers.IntegerField(
        source="policy.days", help_text="Days a record is kept after it is sealed."
    )
    period = serializers.CharField(help_text="The period in words, e.g. “7 years (2,557 days)”.")
    rule = serializers.CharField(source="policy.rule", help_text="The rule it implements.")
    default = serializers.BooleanField(
        source="policy.is_default", help_text="Whether it governs every channel no policy names."
    )
    channels = PolicyChannelSerializer(many=True, help_text="The channels it names.")
    live_records = serializers.IntegerField(
        source="live", help_text="Records it governs that are not yet disposed of."
    )
    next_expiry = serializers.DateTimeField(
        allow_null=True, help_text="When the first of those records falls out of retention."
    )


class PoliciesSerializer(serializers.Serializer[Any]):
    results = PolicySerializer(many=True, help_text="Every policy, the default first.")
    channels_under_default = PolicyChannelSerializer(
        many=True, help_text="Channels no policy names: the default policy governs them."
    )


@extend_schema(
    operation_id="retention_policies_list",
    summary="Retention policies, with their channels and live records",
    responses=PoliciesSerializer,
)
@api_view(["GET"])
@permission_classes(ALLOWED)
def policy_list(request: Request) -> Response:
    rows = policy_rows(policies_for_user(request))
    shown = {"results": rows, "channels_under_default": list(channels_under_default())}
    return Response(PoliciesSerializer(shown).data)


# --- dispositions -----------------------------------------------------------------------------


class DispositionSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The disposition's id.")
    state = serializers.ChoiceField(
        choices=["awaiting", "approved", "running", "done", "failed", "rejected"],
        help_text="awaiting (a second administrator's approval), approved, running, done, "
        "failed or rejected.",
    )
    requested_by = serializers.CharField(
        source="requested_by.username", allow_null=True, help_text="Who planned it."
    )
    requested_at = serializers.DateTimeField(help_text="When it was planned.")
    upto_seq = serializers.IntegerField(help_text="It covers records sealed before this seq…")
    cutoff = serializers.DateTimeField(help_text="…whose retention had ended at this time.")
    planned = serializers.IntegerField(help_text="Records it planned to dispose of.")
    planned_by_kind = serializers.DictField(
        child=serializers.IntegerField(), help_text="Those records by ledger kind."
    )
    planned_by_policy = serializers.DictField(
        child=serializers.IntegerField(), help_text="Those records by policy name."
    )
    erasure = serializers.IntegerField(
        source="erasure_id", allow_null=True, help_text="The erasure request it carries out."
    )
    approved_by = serializers.CharField(
        source="approved_by.username", allow_null=True, help_text="Who approved it."
    )
    approved_at = serializers.DateTimeField(allow_null=True, help_text="When it was approved.")
    finished_at = serializers.DateTimeField(allow_null=True, help_text="When it finished.")
    disposed = serializers.IntegerField(help_text="Records disposed of.")
    media_deleted = serializers.IntegerField(help_text="Media files it deleted.")
    files_waiting = serializers.IntegerField(
        help_text="Media files the records store has not deleted yet (retried each run)."
    )
    files_error = serializers.CharField(
        allow_null=True, help_text="The store's latest reason for not deleting one."
    )
    error = serializers.CharField(help_text="Why it failed or was rejected; empty otherwise.")


@extend_schema(
    operation_id="dispositions_list",
    summary="Disposition runs, oldest first",
    parameters=pages.parameters("The `cursor` of the previous page (a disposition id)."),
    responses=pages.envelope("DispositionPage", DispositionSerializer(many=True)),
)
@api_view(["GET"])
@permission_classes(ALLOWED)
def disposition_list(request: Request) -> Response:
    limit, after = pages.limit_of(request), pages.after_seq(request)
    runs = with_files_waiting(dispositions_for_user(request))
    listed = list(runs.filter(pk__gt=after).order_by("pk")[:limit])
    cursor = str(listed[-1].pk) if listed else (str(after) if after >= 0 else None)
    results = DispositionSerializer(listed, many=True).data
    return pages.page(request, list(results), cursor, len(listed) == limit)


urlpatterns: list[URLPattern] = [
    path("holds/", hold_list, name="api-holds"),
    path("holds/<int:pk>/", hold_detail, name="api-hold"),
    path("holds/<int:pk>/release/", hold_release, name="api-hold-release"),
    path("retention-policies/", policy_list, name="api-retention-policies"),
    path("dispositions/", disposition_list, name="api-dispositions"),
]
