"""The bridge's form: a reply from the transcript, turned into the arguments of its one domain
call (`outbound.send`); what it refuses, bridge/views.py shows as a notice. (Retrying a
notification has nothing to type: its view has an access helper and a domain call only.)"""

from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import QuerySet

from access.boundary import whole_number

from . import outbound
from .models import MessageTemplate, Outbound

MAX_UPLOAD = 100 * 1024 * 1024
MAX_TEXT = 4096  # WhatsApp's limit for a text message
SUBMISSION = 64  # the reply box's one-time key (Outbound.submission)
ALREADY_SENT = "already_sent"


class ReplyForm(forms.Form):
    """Text and a file, or an approved template with its parameters (then the text and the file
    are ignored). A submission key this user already sent with is refused with ALREADY_SENT: a
    form posted twice sends once."""

    submission = forms.CharField(required=False, strip=False)
    template = forms.CharField(required=False, strip=False)
    parameters = forms.CharField(required=False, strip=False)
    text = forms.CharField(required=False, strip=False)
    file = forms.FileField(required=False, allow_empty_file=True)

    def __init__(
        self,
        *args: Any,
        templates: QuerySet[MessageTemplate],
        sent: QuerySet[Outbound],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.templates = templates
        self.sent = sent

    def clean_submission(self) -> str:
        submission: str = self.cleaned_data["submission"][:SUBMISSION]
        if submission and self.sent.filter(submission=submission).exists():
            raise ValidationError(
                "That reply was already sent; it was not sent again.", code=ALREADY_SENT
            )
        return submission

    def clean_template(self) -> MessageTemplate | None:
        chosen = self.cleaned_data["template"]
        if not chosen:
            return None
        template = self.templates.filter(pk=whole_number(chosen) or 0).first()
        if template is None:
            raise ValidationError("That template is not approved for this number.")
        return template

    def clean_parameters(self) -> tuple[str, ...]:
        raw: str = self.cleaned_data["parameters"]
        return tuple(p.strip() for p in raw.split("|")) if raw.strip() else ()

    def clean_text(self) -> str:
        text: str = self.cleaned_data["text"]
        return text.replace("\r\n", "\n").strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.data.get("template"):
            return data  # a template goes on its own: the text and the file are not read
        if len(data.get("text", "")) > MAX_TEXT:
            raise ValidationError(
                f"Not sent: WhatsApp takes at most {MAX_TEXT:,} characters of text."
            )
        upload = data.get("file")
        if upload is not None and upload.size is not None and upload.size > MAX_UPLOAD:
            raise ValidationError("The file is larger than WhatsApp's 100 MB limit.")
        return data

    def already_sent(self) -> bool:
        return self.has_error("submission", ALREADY_SENT)

    def problem(self) -> str:
        """The first thing refused, in the order the fields are read."""
        for name in [*self.fields, NON_FIELD_ERRORS]:
            if name in self.errors:
                return str(self.errors[name][0])
        return ""

    def parts(self) -> list[outbound.Part]:
        """What to send (after is_valid())."""
        data = self.cleaned_data
        if data["template"] is not None:
            return [outbound.Template(data["template"], data["parameters"])]
        parts: list[outbound.Part] = [outbound.Text(data["text"])] if data["text"] else []
        upload = data["file"]
        if upload is not None:
            parts.append(
                outbound.File(
                    upload.read(),
                    upload.content_type or "application/octet-stream",
                    (upload.name or "attachment")[:200],
                )
            )
        return parts
