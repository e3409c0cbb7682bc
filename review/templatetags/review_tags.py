"""Template helpers for transcripts: times shown in the firm's zone with UTC on hover, client
text escaped with its links made inert, and WhatsApp's status ticks."""

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django import template
from django.forms import BoundField, Select
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

register = template.Library()
_URL = re.compile(r"\bhttps?://[^\s<>\"']+", re.IGNORECASE)
TICKS = {"sent": "✓", "delivered": "✓✓", "read": "✓✓", "played": "✓✓", "failed": "!"}


# The two layouts templates ask for, as strftime patterns: django.utils.dateformat cost about
# 0.1 ms a call, and a 60-message transcript shows over a hundred times.
_STRFTIME = {"Y-m-d H:i": "%Y-%m-%d %H:%M", "Y-m-d H:i:s": "%Y-%m-%d %H:%M:%S"}


@register.filter
def when(moment: datetime | None, style: str = "Y-m-d H:i") -> SafeString:
    """<time> in the firm's time zone, with the UTC instant in its title."""
    if moment is None:
        return mark_safe('<span class="muted">no time</span>')
    local = timezone.localtime(moment)
    utc = moment.astimezone(UTC)
    pattern = _STRFTIME.get(style)
    shown = local.strftime(pattern) if pattern else date_format(local, style)
    return format_html(
        '<time datetime="{}" title="{} UTC">{}</time>',
        moment.isoformat(),
        utc.strftime("%Y-%m-%d %H:%M:%S"),
        shown,
    )


@register.filter
def client_text(text: str) -> SafeString:
    """What a client wrote, escaped; a link is shown in full and leads to a warning page first,
    never straight to the site (links are inert unless clicked deliberately)."""
    out, last = [], 0
    leave = reverse("review:leave")
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?)")
        start, end = match.start(), match.start() + len(url)
        out.append(escape(text[last:start]))
        out.append(
            format_html(
                '<a class="ext" href="{}?{}" rel="noopener noreferrer nofollow">{}</a>',
                leave,
                urlencode({"to": url}),
                url,
            )
        )
        last = end
    out.append(escape(text[last:]))
    return mark_safe("".join(out).replace("\n", "<br>"))  # noqa: S308 - every part escaped


@register.filter
def ticks(status: str) -> str:
    return TICKS.get(status, "")


@register.filter
def get(mapping: object, key: str) -> object:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def swatch(colour: str) -> SafeString:
    """A tag's colour as an SVG dot: presentation attributes, which the strict CSP allows
    (a style attribute would be blocked)."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour or ""):
        colour = "#888888"
    return format_html(
        '<svg class="swatch" width="10" height="10" aria-hidden="true" focusable="false">'
        '<circle cx="5" cy="5" r="5" fill="{}"/></svg>',
        colour,
    )


@register.filter
def widget(field: BoundField) -> SafeString:
    """A form field's control. Selects are written here directly: Django renders every option
    through a template, which cost the search page about 15 ms for its six filters."""
    if not isinstance(field.field.widget, Select) or field.field.widget.allow_multiple_selected:
        return field.as_widget()
    value = field.value()
    chosen = "" if value is None else str(value.pk if hasattr(value, "pk") else value)
    options = format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        (
            (key, mark_safe(" selected") if key == chosen else "", label)
            for key, label in ((str(k), lbl) for k, lbl in field.field.widget.choices)
        ),
    )
    return format_html(
        '<select name="{}" id="{}">{}</select>', field.html_name, field.auto_id, options
    )


@register.simple_tag(takes_context=True)
def tag_options(context: template.Context, tags: Iterable[Any]) -> SafeString:
    """The <option>s of a tag picker, built once per page: a transcript has a picker on every
    message, and rendering the options through the template engine each time cost about a tenth
    of the page with eight tags."""
    cache = context.render_context
    if "tag_options" not in cache:
        cache["tag_options"] = format_html_join(
            "", '<option value="{}">{}</option>', ((t.pk, t.name) for t in tags)
        )
    options: SafeString = cache["tag_options"]
    return options
