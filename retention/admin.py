"""Administrators set retention policies here; holds, dispositions and erasure requests are shown,
never edited (the portal's pages change them, through the functions that seal each change).

A policy is saved through retention.policies.save(), never a plain model save: that is what seals
the change in the ledger and lengthens the records already sealed under it. It runs while the
form is validated, inside the admin's transaction, so that its refusals become form errors.
No policy is ever deleted: every record points at the policy that fixed its retention.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.text import Truncator

from access.sessions import recent_authentication_required
from archive.admin import ReadOnlyAdmin

from . import policies
from .models import Disposition, ErasureRequest, LegalHold, PendingDeletion, RetentionPolicy
from .views_support import live_records


class RetentionPolicyForm(forms.ModelForm):  # type: ignore[type-arg]
    confirm_zero_days = forms.BooleanField(required=False, label=policies.ZERO_DAY_WARNING)
    user: Any = None  # the acting administrator, set by RetentionPolicyAdmin.get_form
    lengthened = 0

    class Meta:
        model = RetentionPolicy
        fields = ["name", "days", "rule", "channels", "is_default"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("days") == 0 and not data.get("confirm_zero_days"):
            self.add_error("confirm_zero_days", "Tick this to confirm a period of 0 days.")
        return data

    def _post_clean(self) -> None:
        # After the model's own checks (unique name), as Django's UserCreationForm does.
        super()._post_clean()  # type: ignore[misc]  # not in django-stubs
        if self.errors:
            return
        adding = self.instance.pk is None
        try:
            self.lengthened = policies.save(
                self.instance,
                self.user,
                list(self.cleaned_data.get("channels") or []),
                allow_zero=bool(self.cleaned_data.get("confirm_zero_days")),
            )
        except ValidationError as problem:
            if adding:
                self.instance.pk = None
            self.add_error(None, problem)


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = RetentionPolicyForm
    fields = ["name", "days", "confirm_zero_days", "rule", "channels", "is_default", "governs"]
    readonly_fields = ["governs"]
    filter_horizontal = ["channels"]
    list_display = ["name", "period", "rule_text", "channel_names", "is_default"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RetentionPolicy]:
        return super().get_queryset(request).prefetch_related("channels")

    @method_decorator(recent_authentication_required)  # changing retention: docs/ACCOUNTS.md §4
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"user": request.user})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Already saved and sealed by policies.save() while the form was validated.
        if form.lengthened:
            self.message_user(
                request,
                f"{form.lengthened:,} sealed records are now kept longer (sealed in the ledger).",
                messages.INFO,
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """policies.save() has set the channels already."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="period", ordering="days")
    def period(self, policy: RetentionPolicy) -> str:
        return policies.period_text(policy.days)

    @admin.display(description="rule")
    def rule_text(self, policy: RetentionPolicy) -> str:
        return Truncator(policy.rule).chars(90)

    @admin.display(description="channels")
    def channel_names(self, policy: RetentionPolicy) -> str:
        names = [c.name for c in policy.channels.all()]
        if names:
            return ", ".join(names)
        return "every channel no other policy names" if policy.is_default else "none"

    @admin.display(description="live records it governs")
    def governs(self, policy: RetentionPolicy) -> str:
        return f"{live_records(policy):,}" if policy.pk else "none yet"


@admin.register(LegalHold)
class LegalHoldAdmin(ReadOnlyAdmin):
    list_display = ["matter", "matter_number", "created_by", "created_at", "released_at"]
    search_fields = ["matter", "matter_number"]


@admin.register(Disposition)
class DispositionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "state",
        "planned",
        "disposed",
        "requested_by",
        "requested_at",
        "approved_by",
        "finished_at",
        "files_waiting",
    ]
    list_filter = ["state"]

    @admin.display(description="files not yet deleted")
    def files_waiting(self, disposition: Disposition) -> str:
        waiting = PendingDeletion.objects.filter(disposition=disposition)
        count = waiting.count()
        error = waiting.exclude(error="").order_by("-attempted_at").values_list("error", flat=True)
        return f"{count}: {error[0]}" if count and error else str(count)


@admin.register(ErasureRequest)
class ErasureRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "number", "reference", "received_at", "state", "due_at"]
    list_filter = ["state"]
    search_fields = ["number", "reference"]
