"""What an export covers: a conversation (optionally a date range), the current search (its
query and filters, exactly as the search page takes them), a participant (every conversation
they are in, whole group chats included: also the basis of GDPR access requests), or a legal
hold's matter (every message the hold covers, retention/holds.py).
A participant scope may redact everyone but its subject (`redact_others`, for a GDPR Art. 15
subject access request): exports/source.py's Redaction then pseudonymises them in every format.

A scope is plain data (it is stored on the export and sealed in the ledger when the export is
requested) and resolves to the messages it covers, in a stable order, through `messages()`.
"""

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from access import boundary
from messaging.models import Conversation, Message
from messaging.participants import latest_names
from messaging.summaries import ANNOTATION_TYPES
from retention import search_filter
from retention.models import HoldItem, LegalHold
from review import search

from .models import Export

KINDS = tuple(Export.ScopeKind.values)  # the one list of scope kinds is the model's
REDACT_PARTICIPANT_ONLY = (
    "Redacting other people applies to a participant export only (a GDPR subject access "
    "request): choose the participant scope, or leave redaction off."
)
_DIGITS = re.compile(r"\D")


@dataclass(frozen=True)
class Scope:
    kind: str
    conversation: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    query: dict[str, str] = field(default_factory=dict)  # the search page's GET parameters
    participant: str = ""  # digits of a WhatsApp number (wa_id)
    hold: int | None = None
    redact_others: bool = False  # pseudonymise everyone but the participant (GDPR Art. 15)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValidationError(f"Unknown export scope {self.kind!r}.")
        if self.redact_others and self.kind != "participant":
            raise ValidationError(REDACT_PARTICIPANT_ONLY)
        if self.kind == "conversation" and not self.conversation:
            raise ValidationError("Say which conversation to export.")
        if self.kind == "participant" and len(self.participant) < 6:
            raise ValidationError("Give the participant's full WhatsApp number.")
        if self.kind == "search" and not any(v for k, v in self.query.items() if k != "page"):
            raise ValidationError("An export of a search needs a query or a filter.")
        if self.kind == "hold" and not self.hold:
            raise ValidationError("Say which legal hold to export.")
        boundary.check_date(self.date_from)
        boundary.check_date(self.date_to)
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValidationError("The end date is before the start date.")

    # ------------------------------------------------------------------ construction

    @classmethod
    def for_conversation(
        cls, pk: int, date_from: date | None = None, date_to: date | None = None
    ) -> "Scope":
        return cls("conversation", conversation=pk, date_from=date_from, date_to=date_to)

    @classmethod
    def for_search(cls, params: QueryDict | dict[str, str], user: Any = None) -> "Scope":
        """The search page's parameters; invalid ones (a hold `user` may not see among them)
        are refused with the form's message."""
        # Only the search's own parameters are kept (and sealed): the search page ignores others.
        known = search.parameter_names() - {"page"}
        query = {k: str(v) for k, v in params.items() if v not in ("", None) and k in known}
        form = search.SearchForm(query, user=user)
        if not form.is_valid():
            problems = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in form.errors.items())
            raise ValidationError(f"The search cannot be exported: {problems}")
        return cls("search", query=dict(sorted(query.items())))

    @classmethod
    def for_participant(cls, number: str, *, redact_others: bool = False) -> "Scope":
        return cls("participant", participant=_DIGITS.sub("", number), redact_others=redact_others)

    @classmethod
    def requested(
        cls,
        kind: str,
        *,
        conversation: int | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        query: QueryDict | dict[str, str] | None = None,
        participant: str = "",
        redact_others: bool = False,
        hold: int | None = None,
        user: Any = None,
    ) -> "Scope":
        """A scope as a person asks for it (the portal, the API, the CLI): checked, with a
        message that says what is wrong. `user` is who asks (None: the command line, whose
        operator sees every legal hold); a hold they may not see is one that does not exist."""
        if redact_others and kind != "participant":
            raise ValidationError(REDACT_PARTICIPANT_ONLY)
        if kind == "conversation":
            if not Conversation.objects.filter(pk=conversation or 0).exists():
                raise ValidationError("There is no such conversation.")
            return cls.for_conversation(conversation or 0, date_from, date_to)
        if date_from or date_to:
            raise ValidationError("A date range applies to a conversation export only.")
        if kind == "search":
            return cls.for_search(query or {}, user)
        if kind == "participant":
            return cls.for_participant(participant, redact_others=redact_others)
        if kind == "hold":
            holds = LegalHold.objects.all() if user is None else search_filter.holds_for(user)
            if not holds.filter(pk=hold or 0).exists():
                raise ValidationError("There is no such legal hold.")
            return cls("hold", hold=hold)
        raise ValidationError(f"Unknown export scope {kind!r}.")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Scope":
        return cls(
            kind=data["kind"],
            conversation=data.get("conversation"),
            date_from=date.fromisoformat(data["date_from"]) if data.get("date_from") else None,
            date_to=date.fromisoformat(data["date_to"]) if data.get("date_to") else None,
            query=dict(data.get("query") or {}),
            participant=data.get("participant", ""),
            hold=data.get("hold"),
            redact_others=data.get("redact_others") is True,
        )

    def to_json(self) -> dict[str, Any]:
        """Only what is set, keys sorted: the same scope always serialises the same way."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.conversation:
            out["conversation"] = self.conversation
        if self.date_from:
            out["date_from"] = self.date_from.isoformat()
        if self.date_to:
            out["date_to"] = self.date_to.isoformat()
        if self.query:
            out["query"] = dict(sorted(self.query.items()))
        if self.participant:
            out["participant"] = self.participant
        if self.hold:
            out["hold"] = self.hold
        if self.redact_others:  # only when set: scopes sealed before it serialise unchanged
            out["redact_others"] = True
        return dict(sorted(out.items()))

    # ------------------------------------------------------------------ description

    def label(self) -> str:
        """A short human description, shown in lists and on the PDF cover."""
        if self.kind == "conversation":
            text = f"conversation {self.conversation}"
            convo = (
                Conversation.objects.select_related("participant")
                .filter(pk=self.conversation or 0)
                .first()
            )
            if convo is not None and convo.participant is not None:
                name = latest_names({convo.participant.pk}).get(convo.participant.pk, "")
                number = f"+{convo.participant}"
                text = (
                    # isolated (FSI … PDI): an Arabic or Hebrew name must not pull the number
                    f"conversation with \u2068{name}\u2069 ({number})"
                    if name
                    else f"conversation with {number}"
                )
            elif convo is not None:
                text = f"group conversation {convo.group_id}"
        elif self.kind == "participant":
            text = f"everything with +{self.participant}"
            if self.redact_others:
                text += " (others redacted)"
        elif self.kind == "search":
            q = self.query.get("q", "")
            filters = ", ".join(f"{k}={v}" for k, v in self.query.items() if k != "q")
            text = f"search “{q}”" if q else "search"
            if filters:
                text += f" ({filters})"
        else:
            matter = LegalHold.objects.filter(pk=self.hold or 0).values_list("matter", flat=True)
            text = f"legal hold “{matter[0]}”" if matter else f"legal hold {self.hold}"
        if self.date_from or self.date_to:
            text += f", {self.date_from or '…'} to {self.date_to or '…'}"
        return text[:300]

    # ------------------------------------------------------------------ resolution

    def messages(self) -> QuerySet[Message]:
        """The visible messages in scope (reactions, edits and revocations travel with the
        message they annotate, see exports/source.py)."""
        messages = Message.objects.exclude(type__in=ANNOTATION_TYPES)
        if self.kind == "conversation":
            messages = messages.filter(conversation_id=self.conversation or 0)
        elif self.kind == "participant":
            # their own conversations, and every group chat they wrote in, whole
            groups = Message.objects.filter(sender__wa_id=self.participant).values(
                "conversation_id"
            )
            messages = messages.filter(
                Q(conversation__participant__wa_id=self.participant) | Q(conversation_id__in=groups)
            )
        elif self.kind == "hold":
            messages = messages.filter(entry_id__in=HoldItem.message_seqs(self.hold or 0))
        elif self.kind == "search":
            form = search.SearchForm(self.query)
            if not form.is_valid():
                raise ValidationError("The stored search is no longer valid.")
            data = form.cleaned_data
            messages, _ = search.matching(messages, data)
        if self.date_from:
            messages = messages.filter(sent_at__gte=_day_start(self.date_from))
        if self.date_to:
            messages = messages.filter(sent_at__lt=_day_start(self.date_to + timedelta(days=1)))
        return messages

    def conversations(self) -> QuerySet[Conversation]:
        return Conversation.objects.filter(pk__in=self.messages().values("conversation_id"))


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))
