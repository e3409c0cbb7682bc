"""Channels are configuration (the token is write-only); captured records are read-only."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from archive.admin import ReadOnlyAdmin
from messaging import sequencer
from messaging.models import (
    AccountEvent,
    Attachment,
    Channel,
    Delivery,
    MediaAttempt,
    Message,
    Reseal,
    StatusEvent,
    UnparsedItem,
)


class ChannelForm(forms.ModelForm):  # type: ignore[type-arg]
    access_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current token.",
    )

    class Meta:
        model = Channel
        fields = ["name", "phone_number_id", "display_number", "waba_id", "access_token", "active"]

    def clean_access_token(self) -> str:
        return self.cleaned_data["access_token"] or (self.instance.access_token or "")


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = ChannelForm
    list_display = ["name", "display_number", "phone_number_id", "active"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "received_at", "sealed"]
    exclude = ["body"]

    @admin.display(boolean=True)
    def sealed(self, delivery: Delivery) -> bool:
        return hasattr(delivery, "seal")


@admin.register(UnparsedItem)
class UnparsedItemAdmin(ReadOnlyAdmin):
    list_display = ["delivery", "path", "reason", "error", "resealed"]
    exclude = ["raw"]  # content: kept whole, shown nowhere (its size is)
    readonly_fields = ["size"]
    actions = ["reseal"]

    @admin.display(description="bytes")
    def size(self, item: UnparsedItem) -> int:
        return len(item.raw)

    @admin.display(boolean=True, description="re-sealed")
    def resealed(self, item: UnparsedItem) -> bool:
        return item.reseals.filter(unparsed_again=0).exists()

    def has_reseal_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("messaging.add_reseal")

    @admin.action(description="Re-seal: read again with the current code", permissions=["reseal"])
    def reseal(self, request: HttpRequest, queryset: Any) -> None:
        for item in queryset.order_by("pk"):
            try:
                done = sequencer.reseal(item, request.user)
            except sequencer.ResealRefused as refusal:
                self.message_user(request, f"Item {item.pk}: {refusal}", messages.WARNING)
                continue
            self.message_user(
                request,
                f"Item {item.pk}: {done.items} items read, {done.duplicates} already archived,"
                f" {done.unparsed_again} still unparsed.",
                messages.SUCCESS if done.unparsed_again == 0 else messages.WARNING,
            )


@admin.register(Reseal)
class ResealAdmin(ReadOnlyAdmin):
    list_display = ["unparsed", "requested_by", "items", "duplicates", "unparsed_again", "entry"]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["channel", "direction", "type", "sent_at"]
    list_filter = ["direction", "type", "channel"]
    exclude = ["payload", "text"]  # content belongs in the reviewer portal, with access events

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("channel")


@admin.register(StatusEvent)
class StatusEventAdmin(ReadOnlyAdmin):
    list_display = ["channel", "status", "occurred_at"]


@admin.register(AccountEvent)
class AccountEventAdmin(ReadOnlyAdmin):
    list_display = ["field", "channel", "delivery"]


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdmin):
    list_display = ["message", "outcome", "reason"]
    list_filter = ["outcome"]


@admin.register(MediaAttempt)
class MediaAttemptAdmin(ReadOnlyAdmin):
    list_display = ["message", "attempted_at", "error"]
