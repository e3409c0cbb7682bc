"""Ingestion health and integrity for monitoring (`/api/v1/health/`, `/api/v1/integrity/`).

The figures the portal shows, from the same functions: the ingestion page's (messaging/health.py;
administrators only, as that page) and the home page's integrity card (archive/status.py; every
role with archive.view_integrity). Neither shows message content, and neither page writes to the
access log, so these do not either.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from access.roles import ADMINISTRATOR, HasRole, roles_of
from archive.status import integrity_summary
from messaging.health import check_backlog, ingestion_health
from review.access import require

ALLOWED = [IsAuthenticated, HasRole]
VIEW_INTEGRITY = "archive.view_integrity"


# --- ingestion health -------------------------------------------------------------------------


class IngestionBacklogSerializer(serializers.Serializer[Any]):
    oldest_pending = serializers.DateTimeField(
        allow_null=True, help_text="When the oldest delivery not yet sealed arrived."
    )
    measured_at = serializers.DateTimeField(help_text="When the backlog was measured.")
    age_seconds = serializers.SerializerMethodField(
        help_text="How long the oldest pending delivery has waited (0: none waits)."
    )
    threshold_minutes = serializers.IntegerField(
        help_text="The alarm's threshold (BACKLOG_ALARM_MINUTES)."
    )
    alarming = serializers.BooleanField(
        help_text="True while the oldest pending delivery has waited past the threshold."
    )

    @extend_schema_field(OpenApiTypes.INT)
    def get_age_seconds(self, backlog: Any) -> int:
        return int(backlog.age.total_seconds())


class RejectedWebhooksSerializer(serializers.Serializer[Any]):
    day = serializers.DateField(help_text="The day of the refusals.")
    reason = serializers.CharField(help_text="Why the webhook requests were refused.")
    count = serializers.IntegerField(help_text="How many were refused for it that day.")


class UnparsedItemSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The unparsed item's id (in the admin).")
    delivery = serializers.IntegerField(source="delivery_id", help_text="The delivery it was in.")
    path = serializers.CharField(help_text="Where in the delivery it was.")
    reason = serializers.CharField(help_text="Why it could not be archived as a record.")
    error = serializers.CharField(help_text="The exception's class, if reading it raised.")
    resealed = serializers.BooleanField(help_text="Whether it has since been re-sealed whole.")


class HealthSerializer(serializers.Serializer[Any]):
    backlog = IngestionBacklogSerializer(help_text="The sealing backlog and its alarm.")
    pending = serializers.IntegerField(help_text="Deliveries waiting to be sealed.")
    sealed = serializers.IntegerField(help_text="Deliveries sealed.")
    last_received = serializers.DateTimeField(
        allow_null=True, help_text="When the last delivery arrived."
    )
    oldest_pending = serializers.DateTimeField(
        allow_null=True, help_text="When the oldest delivery not yet sealed arrived."
    )
    duplicates = serializers.IntegerField(help_text="Repeated deliveries counted (not archived).")
    unparsed = serializers.IntegerField(help_text="Items sealed whole but not read as records.")
    unknown_channel = serializers.IntegerField(help_text="Of those, items for unknown channels.")
    media_pending = serializers.IntegerField(
        help_text="Messages whose media is due for fetching (counted up to 1,000)."
    )
    media_failed_attempts = serializers.IntegerField(
        help_text="Failed media fetches (each retried)."
    )
    media_unavailable = serializers.IntegerField(help_text="Attachments never fetchable.")
    rejected = RejectedWebhooksSerializer(
        many=True, help_text="Refused webhook requests by day and reason (the latest 30)."
    )
    recent_unparsed = UnparsedItemSerializer(many=True, help_text="The latest 50 unparsed items.")


@extend_schema(
    operation_id="health_retrieve",
    summary="Ingestion health (administrators)",
    responses=HealthSerializer,
)
@api_view(["GET"])
@permission_classes(ALLOWED)
def health(request: Request) -> Response:
    if ADMINISTRATOR not in roles_of(request.user):  # as the portal's ingestion page
        raise PermissionDenied("Administrators only.")
    figures = ingestion_health()
    check_backlog(figures.backlog)  # a monitor looking is one more chance to raise the alarm
    return Response(HealthSerializer(figures).data)


# --- integrity --------------------------------------------------------------------------------


class LastCheckpointSerializer(serializers.Serializer[Any]):
    tree_size = serializers.IntegerField(help_text="Ledger entries the checkpoint signs.")
    # `root` and `label` are also attributes of DRF's Field, hence the ignores
    root = serializers.SerializerMethodField(  # type: ignore[assignment]
        help_text="The Merkle root, hex (SHA-256)."
    )
    created_at = serializers.DateTimeField(help_text="When it was signed.")

    @extend_schema_field(OpenApiTypes.STR)
    def get_root(self, checkpoint: Any) -> str:
        return bytes(checkpoint.root).hex()


class LastVerificationSerializer(serializers.Serializer[Any]):
    started_at = serializers.DateTimeField(help_text="When the run started.")
    finished_at = serializers.DateTimeField(help_text="When it finished.")
    intact = serializers.BooleanField(help_text="Whether the archive was found intact.")
    entries = serializers.IntegerField(help_text="Ledger entries checked.")
    checkpoints = serializers.IntegerField(help_text="Checkpoints checked.")
    contents = serializers.IntegerField(help_text="Records' contents checked.")
    first_bad_seq = serializers.IntegerField(
        allow_null=True, help_text="The first entry found wrong, if any."
    )
    problem = serializers.CharField(help_text="What was wrong; empty when intact.")
    trigger = serializers.CharField(help_text="What started the run.")
    mode = serializers.CharField(
        help_text="full (every entry) or incremental (only what follows from_seq)."
    )
    from_seq = serializers.IntegerField(
        help_text="The first entry checked: 0 for a full run, the verified checkpoint's size"
        " for an incremental one."
    )


class LastTimestampSerializer(serializers.Serializer[Any]):
    checkpoint = serializers.IntegerField(
        source="checkpoint_id", help_text="The timestamped checkpoint's tree size."
    )
    gen_time = serializers.DateTimeField(help_text="The time the authority vouched for.")


class LastPublicationSerializer(serializers.Serializer[Any]):
    checkpoint = serializers.IntegerField(
        source="checkpoint_id", help_text="The published checkpoint's tree size."
    )
    artifact = serializers.CharField(help_text="note (the signed note) or timestamp (its token).")
    target = serializers.CharField(help_text="records (the records store) or directory.")
    published_at = serializers.DateTimeField(help_text="When it was written.")


class LastCosignatureSerializer(serializers.Serializer[Any]):
    checkpoint = serializers.IntegerField(
        source="checkpoint_id", help_text="The cosigned checkpoint's tree size."
    )
    witness = serializers.CharField(help_text="The witness's key name.")
    signed_at = serializers.DateTimeField(help_text="The cosignature's own timestamp.")


class AnchorBacklogSerializer(serializers.Serializer[Any]):
    duty = serializers.CharField(help_text="The anchoring work waiting.")
    label = serializers.CharField(help_text="That work in words.")  # type: ignore[assignment]
    checkpoints = serializers.IntegerField(help_text="Checkpoints waiting for it.")
    oldest = serializers.DateTimeField(
        allow_null=True, help_text="When the oldest of them was signed."
    )
    last_error = serializers.CharField(help_text="The latest reason it failed; empty if none.")


class AnchoringSerializer(serializers.Serializer[Any]):
    timestamps_configured = serializers.BooleanField(help_text="Whether TSA_URLS is set.")
    witnesses = serializers.IntegerField(help_text="Witnesses configured.")
    checkpoint_dir = serializers.BooleanField(help_text="Whether CHECKPOINT_DIR is set.")
    last_timestamp = LastTimestampSerializer(allow_null=True, help_text="The latest timestamp.")
    last_publication = LastPublicationSerializer(
        allow_null=True, help_text="The latest publication."
    )
    last_cosignature = LastCosignatureSerializer(
        allow_null=True, help_text="The latest cosignature."
    )
    backlog = AnchorBacklogSerializer(many=True, help_text="Anchoring work waiting, by duty.")


class IntegritySerializer(serializers.Serializer[Any]):
    entries = serializers.IntegerField(help_text="Entries in the ledger.")
    unsigned_entries = serializers.IntegerField(
        help_text="Entries sealed since the last checkpoint."
    )
    last_checkpoint = LastCheckpointSerializer(allow_null=True, help_text="The newest checkpoint.")
    last_verification = LastVerificationSerializer(
        allow_null=True, help_text="The latest verify_archive run, full or incremental."
    )
    last_full_verification = LastVerificationSerializer(
        allow_null=True, help_text="The latest run that re-read every entry."
    )
    anchoring = AnchoringSerializer(
        help_text="What anchors checkpoints outside the database (docs/ANCHORING.md)."
    )


@extend_schema(
    operation_id="integrity_retrieve",
    summary="The last checkpoint, verification and anchoring",
    responses=IntegritySerializer,
)
@api_view(["GET"])
@permission_classes(ALLOWED)
def integrity(request: Request) -> Response:
    require(request, VIEW_INTEGRITY)
    return Response(IntegritySerializer(integrity_summary()).data)


urlpatterns: list[URLPattern] = [
    path("health/", health, name="api-health"),
    path("integrity/", integrity, name="api-integrity"),
]
