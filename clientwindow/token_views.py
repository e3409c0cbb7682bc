"""The portal's API tokens (/tokens/): a user lists, issues and revokes their own.

Issuing needs a recent sign-in or re-authentication (access/sessions.py, allauth's page): a
stolen session alone does not yield a long-lived credential. The secret is on the page
answering the issue request and nowhere else. Administrators revoke anyone's token in the
admin (clientwindow/admin.py).
"""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages as notices
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from access.roles import role_required
from access.sessions import recent_authentication_required
from review.access import acting_user

from . import tokens
from .models import ApiToken


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. the e-discovery import.")
    days = forms.IntegerField(min_value=1, label="Valid for (days)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        days = self.fields["days"]
        days.initial = settings.API_TOKEN_DEFAULT_DAYS
        days.widget.attrs["max"] = settings.API_TOKEN_MAX_DAYS  # tokens.issue() enforces it


def tokens_for_user(request: HttpRequest) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(owner=acting_user(request)).select_related("revoked_by")


def token_for_user(request: HttpRequest, pk: int) -> ApiToken:
    """One of the user's own tokens; anyone else's is a 404, as if it did not exist."""
    return get_object_or_404(tokens_for_user(request).select_related("owner"), pk=pk)


def _list(request: HttpRequest, form: TokenForm, status: int = 200) -> HttpResponse:
    context = {"tokens": tokens_for_user(request), "form": form}
    return render(request, "tokens/list.html", context, status=status)


@role_required
@require_GET
def token_list(request: HttpRequest) -> HttpResponse:
    return _list(request, TokenForm())


@role_required
@recent_authentication_required
@require_POST
def create(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if form.is_valid():
        try:
            token, secret = tokens.issue(
                request, form.cleaned_data["name"], form.cleaned_data["days"]
            )
        except ValidationError as refused:
            form.add_error(None, refused)
        else:
            return render(request, "tokens/created.html", {"token": token, "secret": secret})
    return _list(request, form, status=400)


@role_required
@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = token_for_user(request, pk)
    if tokens.revoke(request, token):
        notices.success(request, f"Token {token.prefix}… ({token.name}) revoked.")
    return redirect("tokens:list")


urlpatterns = [
    path("", token_list, name="list"),
    path("new/", create, name="create"),
    path("<int:pk>/revoke/", revoke, name="revoke"),
]
