"""The import pages' forms: the upload (channel, custodian, time zone, file) and the confirmation
of a preview (date order, chat name, one-to-one or group, and each author mapped to a side).
Each turns what a person typed into the arguments of one call of imports/pipeline.py."""

import re
from functools import cache
from pathlib import PurePath
from typing import Any
from zoneinfo import available_timezones

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.template.defaultfilters import filesizeformat

from messaging.models import Channel, Participant
from messaging.participants import latest_names

from .models import ImportJob

EXTENSIONS = (".txt", ".zip")
SUGGESTED_CUSTODIANS = 500
# E.164: a plus, a country code not starting with 0, at most 15 digits in all. What people type
# between the digits (spaces, dots, dashes, brackets) is dropped first.
E164 = re.compile(r"\+[1-9]\d{5,14}")
_SEPARATORS = re.compile(r"[\s().\-\u00a0\u202f\u2060]")
_MARKS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")  # bidi marks in numbers


@cache
def time_zones() -> list[tuple[str, str]]:
    names = sorted(z for z in available_timezones() if z not in ("Factory", "localtime"))
    return [(name, name.replace("_", " ")) for name in names]


def e164(text: str) -> str:
    """A WhatsApp number as typed (or as an export writes it), in E.164, or ValidationError."""
    number = _SEPARATORS.sub("", _MARKS.sub("", text))
    if number.startswith("00"):
        number = "+" + number[2:]
    if not E164.fullmatch(number):
        raise ValidationError(
            f"“{text[:40]}” is not a full international number: give it as +44 7700 900123."
        )
    return number


class UploadForm(forms.Form):
    channel = forms.ModelChoiceField(
        queryset=Channel.objects.filter(active=True).order_by("name"),
        empty_label=None,
        help_text="The firm's WhatsApp number the conversation belongs to.",
    )
    custodian = forms.CharField(
        max_length=200,
        help_text="The employee whose phone the export came from: their side of the chat is "
        "the firm's.",
        widget=forms.TextInput(attrs={"list": "custodians", "autocomplete": "off"}),
    )
    time_zone = forms.ChoiceField(
        choices=time_zones,
        help_text="The phone's time zone when the chat happened: an export writes wall-clock "
        "times without one.",
    )
    file = forms.FileField(
        max_length=255,
        help_text="The .txt WhatsApp wrote, or the .zip with the chat and its media.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].initial = settings.TIME_ZONE

    @staticmethod
    def custodians() -> list[str]:
        """Suggestions for the custodian: the staff who hold a role (any name may be typed)."""
        staff = get_user_model().objects.filter(is_active=True, groups__isnull=False)
        names = staff.distinct().order_by("username").values_list("username", flat=True)
        return list(names[:SUGGESTED_CUSTODIANS])

    def clean_custodian(self) -> str:
        custodian: str = self.cleaned_data["custodian"].strip()
        if not custodian:
            raise ValidationError("Name the employee whose phone the export came from.")
        return custodian

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        name = PurePath(upload.name or "").name
        if not name.lower().endswith(EXTENSIONS):
            raise ValidationError(
                f"“{name}” is neither a .txt nor a .zip: upload the file WhatsApp's "
                "“Export chat” made."
            )
        if upload.size > settings.CHAT_IMPORT_MAX_BYTES:
            raise ValidationError(too_large())
        return upload


def too_large() -> str:
    limit = filesizeformat(settings.CHAT_IMPORT_MAX_BYTES)
    return f"The file is larger than the {limit} an import may be (CHAT_IMPORT_MAX_BYTES)."


AS_CUSTODIAN, AS_PARTICIPANT, AS_NUMBER, AS_UNKNOWN = (
    "custodian",
    "participant",
    "number",
    "unknown",
)
AS_CHOICES = [
    (AS_CUSTODIAN, "the custodian (the firm's side)"),
    (AS_PARTICIPANT, "an existing participant"),
    (AS_NUMBER, "a new participant, by number"),
    (AS_UNKNOWN, "a named unknown"),
]


class ConfirmForm(forms.Form):
    """The preview's choices. One group of fields per author the preview found (`as_N`,
    `participant_N`, `number_N`, in the preview's order); `cleaned_data["mapping"]` is the
    mapping pipeline.confirm() takes."""

    date_order = forms.ChoiceField(
        choices=[("", "choose…"), *ImportJob.DateOrder.choices],
        required=False,
        help_text="Which reading of the dates is right: the file alone cannot tell.",
    )
    chat_name = forms.CharField(
        max_length=250, help_text="The conversation's name in ClientWindow."
    )
    one_to_one = forms.BooleanField(
        required=False,
        label="One-to-one chat",
        help_text="Leave unticked for a group. A one-to-one chat whose other person has a "
        "number joins that person's conversation on the channel.",
    )

    def __init__(
        self, *args: Any, job: ImportJob, participants: QuerySet[Participant], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.job = job
        self.authors: list[dict[str, Any]] = list(job.preview.get("authors") or [])
        self.fields["date_order"].required = job.state == ImportJob.State.NEEDS_DATE_ORDER
        self.fields["date_order"].initial = job.date_order
        self.fields["chat_name"].initial = job.chat_name or job.preview.get("chat_name") or ""
        self.fields["one_to_one"].initial = bool(job.preview.get("one_to_one"))
        # one shared list of suggestions (a <datalist>), not a select per author: a group of
        # 200 authors times 2,000 participants would be 400,000 options
        self.participants = _labelled(participants)
        self._by_number = {number: pk for pk, number, _ in self.participants}
        for index, author in enumerate(self.authors):
            guess = _guess(author, job.export.custodian)
            if guess.get("number") in self._by_number:  # written as a number we know
                guess = {"as": AS_PARTICIPANT, "id": self._by_number[guess["number"]]}
            self.fields[f"as_{index}"] = forms.ChoiceField(
                choices=AS_CHOICES, initial=guess["as"], label=str(author.get("author") or "")
            )
            self.fields[f"participant_{index}"] = forms.CharField(
                max_length=40,
                required=False,
                initial=self._number_of(guess.get("id")),
                widget=forms.TextInput(attrs={"list": "participants", "autocomplete": "off"}),
            )
            self.fields[f"number_{index}"] = forms.CharField(
                max_length=40, required=False, initial=guess.get("number")
            )

    def _number_of(self, pk: object) -> str | None:
        return next((number for id_, number, _ in self.participants if id_ == pk), None)

    def rows(self) -> list[dict[str, Any]]:
        """The author table: each author with its count and its three fields."""
        return [
            {
                "author": author.get("author"),
                "count": author.get("count"),
                "as": self[f"as_{index}"],
                "participant": self[f"participant_{index}"],
                "number": self[f"number_{index}"],
            }
            for index, author in enumerate(self.authors)
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["date_order"] = data.get("date_order") or self.job.date_order
        if not data["date_order"]:
            self.add_error("date_order", "Choose the date order: the file alone cannot tell.")
        mapping: dict[str, dict[str, Any]] = {}
        for index, author in enumerate(self.authors):
            try:
                mapping[str(author.get("author"))] = self._side(index, data)
            except ValidationError as problem:
                self.add_error(f"as_{index}", problem)
        data["mapping"] = mapping
        return data

    def _side(self, index: int, data: dict[str, Any]) -> dict[str, Any]:
        side = data.get(f"as_{index}")
        if side == AS_PARTICIPANT:
            number = e164(data.get(f"participant_{index}") or "")
            if number not in self._by_number:
                raise ValidationError(
                    f"No participant of this channel has the number {number}: map the author "
                    "to a new participant by number instead."
                )
            return {"as": AS_PARTICIPANT, "id": self._by_number[number]}
        if side == AS_NUMBER:
            number = e164(data.get(f"number_{index}") or "")
            if number in self._by_number:  # not new after all: the participant we know
                return {"as": AS_PARTICIPANT, "id": self._by_number[number]}
            return {"as": AS_NUMBER, "number": number}
        return {"as": side or AS_UNKNOWN}


def _labelled(participants: QuerySet[Participant]) -> list[tuple[int, str, str]]:
    """(id, E.164 number, latest name) of the participants with a number."""
    people = [p for p in participants if p.wa_id]
    names = latest_names({p.pk for p in people})
    return [(p.pk, f"+{p.wa_id}", names.get(p.pk, "")) for p in people]


def _guess(author: dict[str, Any], custodian: str) -> dict[str, Any]:
    """The preselected side: the pipeline's guess; the author named as the custodian is the
    custodian; an author written as a number is a participant by that number."""
    name = str(author.get("author") or "")
    guess = author.get("guess")
    if guess == AS_CUSTODIAN or name.strip().casefold() == custodian.strip().casefold():
        return {"as": AS_CUSTODIAN}
    if isinstance(guess, int):
        return {"as": AS_PARTICIPANT, "id": guess}
    try:
        return {"as": AS_NUMBER, "number": e164(name)}
    except ValidationError:
        return {"as": AS_UNKNOWN}
