"""The export request, as the portal and the API take it: a format and a scope."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from access import boundary

from .models import Export
from .scope import Scope


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=Export.Format.choices)
    scope = forms.ChoiceField(
        choices=[(k, k) for k in ("conversation", "search", "participant", "hold")],
        initial="participant",
    )
    hold = forms.IntegerField(required=False, min_value=1)
    conversation = forms.IntegerField(required=False, min_value=1)
    date_from = boundary.DateField(required=False, label="From")
    date_to = boundary.DateField(required=False, label="To")
    query = forms.CharField(required=False, max_length=2000)  # the search page's query string
    participant = forms.CharField(
        required=False, max_length=40, help_text="The full WhatsApp number, e.g. +44 7700 900123."
    )
    redact_others = forms.BooleanField(
        required=False,
        label="Redact other people",
        help_text="For a subject access request (GDPR Art. 15): everyone else in the person's "
        "group chats is shown as Participant 2, 3… without number or name.",
    )

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user  # who asks: the legal holds they may not see do not exist for them

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            data["scope_value"] = self._scope(data, self.user)
        except ValidationError as problem:
            raise ValidationError(problem.messages) from problem
        return data

    @staticmethod
    def _scope(data: dict[str, Any], user: Any) -> Scope:
        return Scope.requested(
            data.get("scope") or "",
            conversation=data.get("conversation"),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            query=QueryDict(data.get("query") or ""),
            participant=data.get("participant") or "",
            redact_others=bool(data.get("redact_others")),
            hold=data.get("hold"),
            user=user,
        )
