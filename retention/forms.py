"""The retention pages' forms: a legal hold (created, or changed with its scope only widened),
its release, an erasure request and a rejected disposition. Each turns what a person typed into
the arguments of one domain call, and the domain's refusals into form errors."""

import re
from datetime import date
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import QueryDict

from access import boundary
from review.models import SavedSearch

from .holds import HoldScope

_NUMBER = re.compile(r"\+?[\d\s().-]+")
NOT_NARROWER = (
    "A hold's scope can only be widened: what it covers must stay covered. To narrow it, "
    "release it and create a new hold."
)


def _dated() -> forms.DateField:
    return boundary.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


def _lines(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=help_text,
    )


def conversation_ids(text: str) -> list[int]:
    tokens = [t for t in re.split(r"[\s,]+", text) if t]
    ids = [boundary.whole_number(t) for t in tokens]
    bad = [t for t, pk in zip(tokens, ids, strict=True) if pk is None]
    if bad:
        raise ValidationError(f"“{bad[0][:40]}” is not a conversation id (ids are whole numbers).")
    return [pk for pk in ids if pk is not None]


def phone_numbers(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    bad = [line for line in lines if not _NUMBER.fullmatch(line)]
    if bad:
        raise ValidationError(f"“{bad[0]}” is not a WhatsApp number.")
    return lines


class ScopeFields(forms.Form):
    """What a hold covers; `clean()` leaves a HoldScope in cleaned_data["scope"]."""

    conversations = forms.CharField(
        required=False,
        max_length=5_000,
        help_text="Conversation ids, comma-separated (the number in a transcript's address).",
    )
    participants = _lines("Participants", "WhatsApp numbers, one per line.")
    saved_search = forms.ModelChoiceField(
        queryset=SavedSearch.objects.none(),
        required=False,
        empty_label="none",
        help_text="One of your saved searches: every message it finds.",
    )
    date_from = _dated()
    date_to = _dated()

    def __init__(self, *args: Any, saved: QuerySet[SavedSearch], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["saved_search"].queryset = saved  # type: ignore[attr-defined]

    def clean_conversations(self) -> list[int]:
        return conversation_ids(self.cleaned_data.get("conversations") or "")

    def clean_participants(self) -> list[str]:
        return phone_numbers(self.cleaned_data.get("participants") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            data["scope"] = self.scope(data)
        except ValidationError as problem:
            raise ValidationError(problem.messages) from problem
        return data

    def scope(self, data: dict[str, Any]) -> HoldScope:
        saved: SavedSearch | None = data.get("saved_search")
        return HoldScope.build(
            conversations=data.get("conversations") or [],
            participants=data.get("participants") or [],
            query=QueryDict(saved.query).dict() if saved else None,
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )


class HoldForm(ScopeFields):
    matter = forms.CharField(label="Matter name", max_length=200)
    matter_number = forms.CharField(max_length=100, required=False)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5_000)
    custodians = _lines("Custodians", "The people it concerns, one per line.")

    field_order = ["matter", "matter_number", "reason", "custodians"]


class HoldChangeForm(ScopeFields):
    """Widen a hold: add conversations, participants or a search (if it has none), move its dates
    outwards; and change its custodians or matter number. The reason is sealed with the change."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=5_000,
        error_messages={"required": "Say why the hold changes."},
    )
    matter_number = forms.CharField(max_length=100, required=False)
    custodians = _lines("Custodians", "The people it concerns, one per line.")

    field_order = ["reason", "custodians", "matter_number"]

    def __init__(self, *args: Any, current: HoldScope, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current = current
        self.fields["conversations"].label = "Add conversations"
        self.fields["participants"].label = "Add participants"
        self.fields["saved_search"].label = "Add a saved search"
        if current.query:  # one search per hold: a second would replace, not add to, the first
            del self.fields["saved_search"]

    def scope(self, data: dict[str, Any]) -> HoldScope:
        current = self.current
        added = super().scope(data)
        if not (current.conversations or current.participants or current.query) and (
            added.conversations or added.participants or added.query
        ):
            # The hold covers every conversation in its dates: naming some would narrow it.
            raise ValidationError(NOT_NARROWER)
        if not _widens(current.date_from, added.date_from, earlier=True) or not _widens(
            current.date_to, added.date_to, earlier=False
        ):
            raise ValidationError(NOT_NARROWER)
        return HoldScope.build(
            conversations=[*current.conversations, *added.conversations],
            participants=[*current.participants, *added.participants],
            query=current.query or added.query,
            date_from=added.date_from,
            date_to=added.date_to,
        )


def _widens(before: date | None, after: date | None, *, earlier: bool) -> bool:
    """A date bound is widened by removing it or moving it outwards, never by adding one."""
    if after is None:
        return True
    if before is None:
        return False
    return after <= before if earlier else after >= before


class ReasonForm(forms.Form):
    """Releasing a hold or rejecting a disposition: the reason is required and sealed."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=1_000,
        error_messages={"required": "Give a reason."},
    )


class ErasureForm(forms.Form):
    number = forms.CharField(
        label="WhatsApp number",
        max_length=40,
        help_text="The data subject's full number, e.g. +44 7700 900123.",
    )
    reference = forms.CharField(
        max_length=200, required=False, help_text="Your reference for the request (optional)."
    )

    def clean_number(self) -> str:
        return phone_numbers(self.cleaned_data["number"])[0]
