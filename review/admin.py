"""Administrators configure review here: tags, lexicon policies (with a run over a date range)
and sampling policies. Flags, decisions, draws and access events are shown, never edited here:
decisions are made in the portal, where they are sealed."""

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from archive.admin import ReadOnlyAdmin
from review import lexicon
from review.models import (
    AccessEvent,
    Flag,
    LexiconPolicy,
    LexiconTerm,
    ReviewDecision,
    SamplingDraw,
    SamplingPolicy,
    Tag,
)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "colour", "description"]
    search_fields = ["name"]


class LexiconTermInline(admin.TabularInline):  # type: ignore[type-arg]
    model = LexiconTerm
    extra = 3


class DateRangeForm(forms.Form):
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError("The end date is before the start date.")
        return data


@admin.register(LexiconPolicy)
class LexiconPolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "severity", "active", "case_sensitive", "whole_word"]
    list_filter = ["active", "severity"]
    filter_horizontal = ["channels"]
    inlines = [LexiconTermInline]
    actions = ["run_over_range"]

    @admin.action(description="Run the selected policies over a date range")
    def run_over_range(
        self, request: HttpRequest, queryset: QuerySet[LexiconPolicy]
    ) -> HttpResponse | None:
        today = timezone.localdate()
        form = DateRangeForm(
            request.POST if "start" in request.POST else None,
            initial={"start": today - timedelta(days=30), "end": today},
        )
        if form.is_bound and form.is_valid():
            matched = lexicon.scan_range(
                form.cleaned_data["start"], form.cleaned_data["end"], queryset
            )
            self.message_user(
                request,
                f"{matched} match{'es' if matched != 1 else ''} found; each raised one flag "
                "(flags raised before were kept as they were).",
                messages.SUCCESS,
            )
            return None
        return render(
            request,
            "admin/review/run_lexicon.html",
            {**self.admin_site.each_context(request), "form": form, "policies": queryset},
        )


@admin.register(SamplingPolicy)
class SamplingPolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "percent", "period", "active"]
    filter_horizontal = ["channels"]


@admin.register(SamplingDraw)
class SamplingDrawAdmin(ReadOnlyAdmin):
    list_display = ["policy", "period_start", "period_end", "population", "drawn", "drawn_at"]


@admin.register(Flag)
class FlagAdmin(ReadOnlyAdmin):
    list_display = ["id", "source", "lexicon_policy", "state", "assignee", "raised_at"]
    list_filter = ["state", "source", "lexicon_policy"]


@admin.register(ReviewDecision)
class ReviewDecisionAdmin(ReadOnlyAdmin):
    list_display = ["flag", "outcome", "decided_by", "escalated_to", "decided_at", "entry"]
    list_filter = ["outcome"]


@admin.register(AccessEvent)
class AccessEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "username", "address", "action", "object_type", "object_id"]
    list_filter = ["action"]
    search_fields = ["username"]
    show_full_result_count = False
