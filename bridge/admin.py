"""Routes and templates are configuration (webhook URLs are write-only: they carry their secret);
notifications, reply emails and sends are read-only records (their states change only through the
bridge; the reconciliation page can retry a notification)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from archive.admin import ReadOnlyAdmin

from .models import InboundEmail, MessageTemplate, Notification, Outbound, Route
from .routes import check_webhook_url


class RouteForm(forms.ModelForm):  # type: ignore[type-arg]
    slack_url = forms.CharField(
        label="Slack incoming-webhook URL",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current URL; enter - to remove it.",
    )
    teams_url = forms.CharField(
        label="Teams incoming-webhook URL",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current URL; enter - to remove it.",
    )

    class Meta:
        model = Route
        fields = [
            "name",
            "channel",
            "conversation",
            "email_recipients",
            "users",
            "reply_senders",
            "slack_url",
            "teams_url",
            "journal_address",
            "metadata_only",
            "active",
        ]

    def _url(self, field: str, service: str) -> str:
        value = self.cleaned_data[field].strip()
        if value == "-":
            return ""
        if not value:
            return str(getattr(self.instance, field) or "")
        return check_webhook_url(value, service)

    def clean_slack_url(self) -> str:
        return self._url("slack_url", "Slack")

    def clean_teams_url(self) -> str:
        return self._url("teams_url", "Teams")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        conversation, channel = cleaned.get("conversation"), cleaned.get("channel")
        if (
            conversation is not None
            and channel is not None
            and conversation.channel_id != channel.pk
        ):
            raise ValidationError("The conversation is not on this channel.")
        return cleaned


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = RouteForm
    list_display = [
        "__str__",
        "channel",
        "conversation",
        "journal_address",
        "metadata_only",
        "active",
    ]
    list_filter = ["active", "channel"]
    raw_id_fields = ["conversation"]
    filter_horizontal = ["users"]

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False  # notifications point at routes: deactivate instead


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "language", "channel", "active"]
    list_filter = ["active", "channel"]

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "kind",
        "state",
        "route",
        "conversation",
        "created_at",
        "attempts",
        "sent_at",
    ]
    list_filter = ["kind", "state"]


@admin.register(InboundEmail)
class InboundEmailAdmin(ReadOnlyAdmin):
    list_display = ["id", "received_at", "via", "sender", "state", "conversation"]
    list_filter = ["via", "state"]
    exclude = ["raw"]


@admin.register(Outbound)
class OutboundAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "conversation", "source", "type", "state", "user"]
    list_filter = ["state", "source", "type"]
    exclude = ["request", "response"]
