"""The search page's legal-hold filter, which retention adds to review's search
(review.search.FILTERS, registered in RetentionConfig.ready()).

Hold names and membership are Legal's and Auditors', not Reviewers': the filter offers a user
only the holds they may see, lists no matter names to anyone else, and refuses a hold they may
not see exactly like one that does not exist.
"""

from typing import Any

from django import forms
from django.core import checks
from django.db.models import QuerySet

from messaging.models import Message
from retention.access import VIEW_HOLDS
from retention.models import HoldItem, LegalHold
from review import search


def holds_for(user: Any) -> QuerySet[LegalHold]:
    """The holds `user` may filter and export by: all of them with `retention.view_legalhold`,
    none without. A hold they may not see is refused exactly like one that does not exist."""
    return LegalHold.objects.all() if user.has_perm(VIEW_HOLDS) else LegalHold.objects.none()


def _field(user: Any) -> forms.Field:
    """`user` None: the domain re-reading a search already allowed (every hold)."""
    holds = LegalHold.objects.all() if user is None else holds_for(user)
    # read once per form in one plain statement (search.ListedChoiceField), not through a
    # server-side cursor per drawing and once more to clean the hold given
    field = search.ListedChoiceField(holds, required=False, empty_label="any", label="Legal hold")
    if user is not None and not user.has_perm(VIEW_HOLDS):
        field.widget = forms.HiddenInput()  # the page lists no matter names to them
    return field


def _apply(messages: QuerySet[Message], hold: LegalHold) -> QuerySet[Message]:
    return messages.filter(entry_id__in=HoldItem.message_seqs(hold))


HOLD = search.Filter("hold", _field, _apply)


@checks.register()
def hold_filter_registered(**kwargs: Any) -> list[checks.CheckMessage]:
    """Without it, a search or export naming a hold would silently match more than the hold."""
    if search.FILTERS.get(HOLD.name) is not HOLD:
        return [
            checks.Error(
                "the legal-hold filter is not registered with review.search",
                hint="RetentionConfig.ready() must call review.search.add_filter(HOLD)",
                id="retention.E001",
            )
        ]
    return []
