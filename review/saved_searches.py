"""A user's saved searches: bookmarks of a search's query string, private to their owner."""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from review.models import SavedSearch


def save(user: AbstractBaseUser, name: str, query: str) -> SavedSearch:
    """Save `query` under `name`; a name the user already uses is refused."""
    try:
        with transaction.atomic():
            return SavedSearch.objects.create(user_id=user.pk, name=name, query=query)
    except IntegrityError:
        raise ValidationError(f"You already have a saved search called “{name}”.") from None


def delete(saved: SavedSearch) -> None:
    saved.delete()
