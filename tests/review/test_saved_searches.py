"""Saved searches: one name once per user."""

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from review import saved_searches
from review.models import SavedSearch


def test_it_refuses_a_second_search_with_the_same_name(reviewer: Any, auditor: Any) -> None:
    saved_searches.save(reviewer, "Bonds", "q=bond")
    with pytest.raises(ValidationError, match="already have a saved search called “Bonds”"):
        saved_searches.save(reviewer, "Bonds", "q=other")
    saved_searches.save(auditor, "Bonds", "q=bond")  # the name is per user
    assert SavedSearch.objects.count() == 2


def test_it_deletes_a_saved_search(reviewer: Any) -> None:
    saved = saved_searches.save(reviewer, "Bonds", "q=bond")
    saved_searches.delete(saved)
    assert not SavedSearch.objects.exists()
