"""The exports API (`/api/v1/exports/`): request an export, follow its status, download it.

DRF with token or session authentication; the same access helper and domain calls as the portal
(exports/access.py, exports/jobs.py), and the same access events and ledger entries.
"""

import uuid
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http.response import HttpResponseBase
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from access import boundary

from .access import export_for_user, exports_for_user
from .models import Export
from .scope import Scope
from .serving import download_response, start_export


class ScopeSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=Export.ScopeKind.values)
    hold = serializers.IntegerField(required=False, min_value=1)
    conversation = serializers.IntegerField(required=False, min_value=1)
    date_from = boundary.api_date_field(required=False)
    date_to = boundary.api_date_field(required=False)
    query = serializers.DictField(child=serializers.CharField(), required=False)
    participant = serializers.CharField(required=False, max_length=40)
    # A subject access export (participant scopes only): everyone else pseudonymised.
    redact_others = serializers.BooleanField(required=False, default=False)


class ExportSerializer(serializers.ModelSerializer[Export]):
    requested_by = serializers.CharField(source="requested_by.get_username", read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id",
            "format",
            "scope",
            "scope_label",
            "state",
            "percent",
            "progress_done",
            "progress_total",
            "message_count",
            "error",
            "requested_by",
            "requested_at",
            "started_at",
            "finished_at",
            "expires_at",
            "checkpoint_size",
            "file_size",
            "file_sha256",
            "requested_seq",
            "completed_seq",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, export: Export) -> str | None:
        if export.state != Export.State.DONE or not export.file_name:
            return None
        return reverse("api-exports-download", args=[export.pk])


class ExportRequestSerializer(serializers.Serializer[Any]):
    format = serializers.ChoiceField(choices=Export.Format.choices)
    scope = ScopeSerializer()


def scope_from(data: dict[str, Any], user: Any) -> Scope:
    """The validated scope, or a 400 naming what is wrong with it."""
    try:
        return Scope.requested(
            data["kind"],
            conversation=data.get("conversation"),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            query=data.get("query"),
            participant=data.get("participant", ""),
            redact_others=data.get("redact_others", False),
            hold=data.get("hold"),
            user=user,
        )
    except DjangoValidationError as problem:
        raise ValidationError({"scope": problem.messages}) from problem


class ExportViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Export]
):
    serializer_class = ExportSerializer
    queryset = Export.objects.none()  # for the schema; requests go through get_queryset()
    lookup_value_converter = "uuid"

    def get_queryset(self) -> Any:
        try:
            return exports_for_user(self.request)
        except PermissionDenied as refused:
            raise ApiPermissionDenied(str(refused)) from refused

    def get_object(self) -> Export:
        self.get_queryset()  # the permission check, with its message
        try:
            pk = uuid.UUID(self.kwargs["pk"])
        except ValueError as malformed:  # not an export's id: no export has it
            raise NotFound("No export has this id.") from malformed
        return export_for_user(self.request, pk)

    @extend_schema(request=ExportRequestSerializer, responses={201: ExportSerializer})
    def create(self, request: Request) -> Response:
        self.get_queryset()
        payload = ExportRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        scope = scope_from(payload.validated_data["scope"], request.user)
        export = start_export(request, scope, payload.validated_data["format"], via="api")
        return Response(ExportSerializer(export).data, status=201)

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str) -> HttpResponseBase:
        return download_response(request, self.get_object(), via="api")
