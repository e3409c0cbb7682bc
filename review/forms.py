"""The review pages' forms: list filters read from the query string, saved searches, and one
form for each thing a reviewer posts (a tag, a flag, a claim, a decision, a comment). Each turns
what a person typed into the arguments of one domain call (review/tags.py, review/flags.py,
review/saved_searches.py). Django's CharField refuses NUL characters, which PostgreSQL text
cannot hold."""

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseBadRequest, QueryDict

from access.boundary import whole_number
from review.models import AccessEvent, Flag, LexiconPolicy, ReviewDecision, SamplingPolicy, Tag
from review.search import SearchForm

User = get_user_model()
NOTE_LIMIT = 2000  # a flag's note
TEXT_LIMIT = 5000  # a decision's reason, a comment
BULK_LIMIT = 500  # flags decided at once; ids past it are not read


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


def reviewers() -> Any:
    """Users who may decide flags: whom a flag can be escalated to."""
    return (
        User.objects.filter(is_active=True, groups__permissions__codename="decide_flag")
        .distinct()
        .order_by("username")
    )


def form_problems(form: forms.Form) -> str:
    """Every error of a posted form as one sentence, for a notice after the redirect."""
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


def refusal(error: Exception) -> str:
    """A domain call's refusal as one sentence for a notice: a ValidationError's messages, or
    the text of any other refusal (PermissionDenied, IntegrityError)."""
    return " ".join(getattr(error, "messages", [str(error)]))


# --- the queue's filters ----------------------------------------------------------------------


class QueueFilter(forms.Form):
    state = forms.ChoiceField(
        choices=[("open", "open or escalated"), ("", "any state"), *Flag.State.choices],
        required=False,
    )
    policy = forms.ChoiceField(required=False, choices=[])
    assignee = forms.ChoiceField(required=False, choices=[])
    page = forms.IntegerField(required=False, min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["policy"].choices = [  # type: ignore[attr-defined]
            ("", "any source"),
            ("manual", "raised by hand"),
            *[(f"lexicon:{p.pk}", f"lexicon: {p.name}") for p in LexiconPolicy.objects.all()],
            *[(f"sampling:{p.pk}", f"sample: {p.name}") for p in SamplingPolicy.objects.all()],
        ]
        self.fields["assignee"].choices = [  # type: ignore[attr-defined]
            ("", "anyone"),
            ("me", "me"),
            ("none", "unassigned"),
            *[(str(u.pk), u.get_username()) for u in reviewers()],
        ]


# --- what reviewers post ----------------------------------------------------------------------


class TagForm(forms.Form):
    """Apply a tag, or remove it (action=remove); an unknown tag is the view's 404."""

    tag = forms.CharField()
    action = forms.Field(required=False)  # "remove" removes; anything else applies

    def clean_tag(self) -> Tag:
        tag = Tag.objects.filter(pk=whole_number(self.cleaned_data["tag"]) or 0).first()
        if tag is None:
            raise forms.ValidationError("No such tag.")
        return tag

    @property
    def applies(self) -> bool:
        return bool(self.cleaned_data.get("action") != "remove")


class FlagForm(forms.Form):
    """Raise a flag: the note says why (review/flags.py refuses a blank one)."""

    note = forms.CharField(required=False, max_length=NOTE_LIMIT)


class CommentForm(forms.Form):
    text = forms.CharField(required=False, max_length=TEXT_LIMIT)


class GoesBack(forms.Form):
    """A POST from a page it may return to: `next` (the view keeps it on this site)."""

    next = forms.Field(required=False)


class ClaimForm(GoesBack):
    """Claim a flag: nothing to say but where to go back to."""


class DecisionForm(GoesBack):
    """Decide a flag: an outcome, a reason and, to escalate, whom to. The rules about them
    (a reason for not compliant, somebody to escalate to) are review/flags.py's."""

    outcome = forms.ChoiceField(
        choices=ReviewDecision.Outcome.choices,
        required=False,  # flags.decide names an empty outcome as unknown too
        error_messages={"invalid_choice": "Unknown outcome %(value)r."},
    )
    reason = forms.CharField(required=False, max_length=TEXT_LIMIT)
    escalate_to = forms.Field(required=False)

    def clean_escalate_to(self) -> Any:
        """A reviewer, or None (then flags.decide asks for one if the outcome is escalated)."""
        pk = whole_number(str(self.cleaned_data["escalate_to"] or ""))
        return None if pk is None else reviewers().filter(pk=pk).first()


class FlagsField(forms.Field):
    """The ticked flags among those a user may see: ids that are no number, or name a flag they
    cannot see, are passed over; none left is an error."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"required": "Choose at least one flag."}

    def __init__(self, *, queryset: QuerySet[Flag], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queryset = queryset

    def to_python(self, value: Any) -> list[Flag]:
        values = [value] if isinstance(value, str) else list(value or [])
        ids = [n for n in (whole_number(str(v)) for v in values[:BULK_LIMIT]) if n is not None]
        return list(self.queryset.filter(pk__in=ids)) if ids else []


class BulkDecisionForm(DecisionForm):
    """Claim or decide many flags from the queue; `query` is the queue's filter to go back to."""

    outcome = forms.ChoiceField(
        choices=[("claim", "claim"), *ReviewDecision.Outcome.choices],
        required=False,
        error_messages={"invalid_choice": "Unknown outcome %(value)r."},
    )
    query = forms.Field(required=False)

    def __init__(self, *args: Any, flags: QuerySet[Flag], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["flag"] = FlagsField(queryset=flags)
        self.order_fields(["flag"])  # "Choose at least one flag." comes first
