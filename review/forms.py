"""The review pages' small forms: list filters read from the query string, and saved searches.
Django's CharField refuses NUL characters, which PostgreSQL text cannot hold."""

from typing import Any

from django import forms
from django.http import HttpResponse, HttpResponseBadRequest, QueryDict

from access.boundary import whole_number
from review.models import AccessEvent
from review.search import SearchForm


def bad_request(form: forms.Form) -> HttpResponse:
    """A 400 naming each field that is wrong (for filters in a query string, where there is no
    form to show again)."""
    problems = "; ".join(
        f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items()
    )
    return HttpResponseBadRequest(
        f"Bad request: {problems}", content_type="text/plain; charset=utf-8"
    )


class IdField(forms.CharField):
    """A database id, or None when left empty."""

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        number = whole_number(text)
        if number is None:
            raise forms.ValidationError("Give an id (a whole number).")
        return number


class ConversationFilters(forms.Form):
    channel = IdField(required=False)
    who = forms.CharField(required=False, max_length=100)
    tag = IdField(required=False)
    flagged = forms.CharField(required=False, max_length=20)
    sort = forms.CharField(required=False, max_length=20)
    after = forms.CharField(required=False, max_length=100)


class AccessLogFilters(forms.Form):
    user = forms.CharField(required=False, max_length=150)
    action = forms.ChoiceField(required=False, choices=[("", "any"), *AccessEvent.Action.choices])
    page = forms.CharField(required=False, max_length=20)  # the paginator takes anything


class SavedSearchForm(forms.Form):
    name = forms.CharField(
        max_length=120, error_messages={"required": "Give the search a name to save it."}
    )
    query = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_query(self) -> str:
        query: str = self.cleaned_data["query"]
        search = SearchForm(QueryDict(query), user=self.user)
        if not search.is_valid():
            problems = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in search.errors.items())
            raise forms.ValidationError(f"This search cannot be saved: {problems}")
        return query
