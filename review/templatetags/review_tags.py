"""Template helpers for transcripts: times shown in the firm's zone with UTC on hover, client
text escaped with its links made inert, and WhatsApp's status ticks."""

import functools
import html
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlencode

from django import template
from django.forms import BoundField, Select
from django.template.defaulttags import CsrfTokenNode
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.formats import localize
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst

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
    # isoformat() and the strftime layouts hold digits, '-', ':', '.', '+' and 'T' only: nothing
    # to escape (a transcript shows two of these a row; format_html's escaping was half their cost)
    shown = local.strftime(pattern) if pattern else escape(date_format(local, style))
    return mark_safe(  # noqa: S308
        f'<time datetime="{moment.isoformat()}"'
        f' title="{utc.strftime("%Y-%m-%d %H:%M:%S")} UTC">{shown}</time>'
    )


@register.filter
def stamp(moment: datetime | None, style: str = "Y-m-d H:i") -> str:
    """What the `date` filter shows for `moment` in the firm's time zone, without its cost
    (a transcript row's status times: three per outbound message)."""
    if moment is None or moment == "":
        return ""
    local = timezone.localtime(moment)
    pattern = _STRFTIME.get(style)
    return local.strftime(pattern) if pattern else date_format(local, style)


@register.filter
def status_title(row: Any) -> str:
    """An outbound message's status history for its ticks' title: "sent …; delivered …"."""
    return "; ".join(f"{s.status} {stamp(s.occurred_at, 'Y-m-d H:i:s')}" for s in row.statuses) or (
        "no status yet"
    )


@register.filter
def client_text(text: str) -> SafeString:
    """What a client wrote, escaped; a link is shown in full and leads to a warning page first,
    never straight to the site (links are inert unless clicked deliberately)."""
    out, last = [], 0
    leave = ""
    for match in _URL.finditer(text):
        leave = leave or reverse("review:leave")  # only for text with a link: most has none
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


def _e(value: object) -> str:
    """Escaped as django.utils.html.escape escapes (html.escape of its str), without its lazy
    wrapper and SafeString: the search page's options and hits call this thousands of times a
    page, and format_html's conditional_escape per value cost ~1.5 ms of it (docs/SCALE.md §7t).
    Only for plain values: markup already made safe goes in as it is, never through here."""
    return html.escape(str(value))


# Django's widgets whose template is its input.html alone: `widget` writes them the way that
# template does (tests/review/test_review_tags.py compares the two for our forms' inputs).
_INPUTS = frozenset(
    f"django/forms/widgets/{name}.html"
    for name in ("text", "number", "email", "url", "password", "hidden", "date", "checkbox")
)


@register.filter
def widget(field: BoundField) -> SafeString:
    """A form field's control, written here directly for selects and plain inputs: Django
    renders each through its template engine, which cost the search page about 15 ms for its
    six selects' options, format_html per option another ~1 ms, and its three inputs ~0.6 ms.
    Anything else (a multiple select, a textarea, a custom widget) is Django's own."""
    control = field.field.widget
    if control.template_name in _INPUTS:
        return _input(field)
    if not isinstance(control, Select) or control.allow_multiple_selected:
        return field.as_widget()
    value = field.value()
    chosen = "" if value is None else str(value.pk if hasattr(value, "pk") else value)
    options = []
    for key, label in control.choices:
        key = str(key)
        selected = " selected" if key == chosen else ""
        options.append(f'<option value="{_e(key)}"{selected}>{_e(label)}</option>')
    return mark_safe(  # noqa: S308 - every value escaped above
        f'<select name="{_e(field.html_name)}" id="{_e(field.auto_id)}">{"".join(options)}</select>'
    )


# The filters a search form shows as dates: their control is written here as an <input
# type="date"> (a DateField's own widget is a text input).
_DATES = frozenset({"date_from", "date_to"})


@register.simple_tag
def search_filters(form: Any) -> SafeString:
    """The search form's filters (every visible field but the words and the page), each in its
    <label>: written here, not by a loop in the template, whose lookups and conditions per field
    cost the search page about half a millisecond (docs/SCALE.md §7w)."""
    rows = []
    for field in form.visible_fields():
        if field.name in ("q", "page"):
            continue
        if field.name in _DATES:
            value = field.value()
            control = (
                f'<input type="date" name="{_e(field.name)}"'
                f' value="{"" if value is None else _e(value)}" id="{_e(field.id_for_label)}">'
            )
        else:
            control = widget(field)
        rows.append(f"\n    <label>{_e(field.label)} {control}</label>\n    ")
    return mark_safe("".join(rows))  # noqa: S308 - every value escaped or already safe


def _input(field: BoundField) -> SafeString:
    """What BoundField.as_widget renders for an input: its attributes as as_widget builds them
    (required, aria-invalid, aria-describedby, the id), its value as the widget formats it,
    written as django/forms/widgets/input.html and attrs.html write them."""
    control = field.field.widget
    if field.field.localize:
        control.is_localized = True
    attrs = field.build_widget_attrs({}, control)
    if field.auto_id and "id" not in control.attrs:
        attrs.setdefault("id", field.auto_id)
    shown = control.get_context(field.html_name, field.value(), attrs)["widget"]
    value = "" if shown["value"] is None else f' value="{_e(shown["value"])}"'
    written = "".join(
        f" {_e(name)}" if given is True else f' {_e(name)}="{_e(given)}"'
        for name, given in shown["attrs"].items()
        if given is not False
    )
    return mark_safe(  # noqa: S308 - every value escaped above
        f'<input type="{_e(shown["type"])}" name="{_e(shown["name"])}"{value}{written}>'
    )


@register.simple_tag(takes_context=True)
def tag_options(context: template.Context, tags: Iterable[Any]) -> SafeString:
    """The <option>s of a tag picker, built once per page: a transcript has a picker on every
    message, and rendering the options through the template engine each time cost about a tenth
    of the page with eight tags."""
    options: SafeString = _once(
        context,
        "tag_options",
        lambda: format_html_join(
            "", '<option value="{}">{}</option>', ((t.pk, t.name) for t in tags)
        ),
    )
    return options


# --- a transcript row's actions, written here rather than through the template engine: every
# row of a 60-message window has a tag picker, an evidence panel and a flag form, and rendering
# them node by node was about half of the page's time. The markup is the partials' own
# (templates/review/transcript.html calls these from them), character for character.


def _once(context: template.Context, key: str, make: Callable[[], Any]) -> Any:
    """`make()` once per page rendered, kept under `key` for the rest of it. Not in
    `render_context` itself: every partial (each row's, template_partials) renders in a fresh
    isolated state of it, so a value kept there lasted one row. Its bottom layer lives as long as
    the page's Context, i.e. one render."""
    page = cast(dict[str, Any], context.render_context.dicts[0])
    key = f"review_tags:{key}"
    if key not in page:
        page[key] = make()
    return page[key]


def _allowed(context: template.Context, permission: str) -> bool:
    """A permission of the user rendering the page, looked up once per page."""
    user = context.get("user")
    return bool(
        _once(context, f"perm:{permission}", lambda: user is not None and user.has_perm(permission))
    )


def _csrf(context: template.Context) -> str:
    return str(_once(context, "csrf", lambda: CsrfTokenNode().render(context)))


@register.simple_tag(takes_context=True)
def message_tags(context: template.Context, message: Any, applied: Any, tags: Any) -> SafeString:
    """The tags on a message, each removable, and the picker to add one (the message-tags
    partial; the tag POST's htmx answer renders the same)."""
    pk = message.pk
    url = pk_url("review:tag_message", pk)
    can_tag = _allowed(context, "review.tag_archive")
    spans = []
    for mt in applied:
        remove = ""
        if can_tag:
            remove = format_html(
                '<form method="post" action="{}" class="inline" hx-post="{}"'
                ' hx-target="#mtags-{}" hx-swap="outerHTML">{}<input type="hidden" name="tag"'
                ' value="{}"><input type="hidden" name="action" value="remove"><button'
                ' type="submit" class="x" aria-label="Remove tag {}">×</button></form>',  # noqa: RUF001
                url,
                url,
                pk,
                mark_safe(_csrf(context)),  # noqa: S308 - Django's own hidden input
                mt.tag.pk,
                mt.tag.name,
            )
        spans.append(
            format_html(
                '<span class="tag">{}{}{}</span>', swatch(mt.tag.colour), mt.tag.name, remove
            )
        )
    picker = ""
    if can_tag and tags:
        picker = format_html(
            '<details class="tagform"><summary>Tag</summary>\n  <form method="post" action="{}"'
            ' class="inline addtag" hx-post="{}" hx-target="#mtags-{}" hx-swap="outerHTML">{}\n'
            '    <label class="sr-only" for="tag-{}">Tag this message</label>\n'
            '    <select name="tag" id="tag-{}">{}</select>\n'
            '    <button type="submit" class="small">Apply</button>\n'
            "  </form></details>\n  ",
            url,
            url,
            pk,
            mark_safe(_csrf(context)),  # noqa: S308 - Django's own hidden input
            pk,
            pk,
            tag_options(context, tags),
        )
    return format_html(
        '\n<div class="tags mtags" id="mtags-{}">\n  {}\n  {}\n</div>\n',
        pk,
        mark_safe("".join(spans)),  # noqa: S308 - each built by format_html
        picker,
    )


@register.simple_tag
def evidence(row: Any) -> SafeString:
    """A message's evidence panel (the evidence partial): its ledger entry, seal, checkpoint."""
    m = row.message
    checkpoint = (
        format_html("signed tree of size {}", row.checkpoint)
        if row.checkpoint
        else "not yet in a signed checkpoint"
    )
    if row.imported:
        parser = row.imported.parser_version
        source = format_html(
            "<dt>Source</dt><dd>{}{}</dd>\n  ",
            row.imported.label,
            format_html(" (parser {})", parser) if parser else "",
        )
    else:
        source = format_html("<dt>Delivery</dt><dd>{} ({})</dd>", m.delivery_id, m.source)
    return format_html(
        '\n<dl class="facts small">\n'
        "  <dt>Ledger seq</dt><dd>{}</dd>\n"
        '  <dt>Leaf hash</dt><dd class="hash">{}</dd>\n'
        "  <dt>Sealed</dt><dd>{}</dd>\n"
        "  <dt>Checkpoint</dt><dd>{}</dd>\n"
        '  <dt>Message id</dt><dd class="hash">{}</dd>\n'
        "  {}\n"
        "</dl>\n",
        m.entry_id,
        m.entry.leaf_hash.hex(),
        when(m.entry.sealed_at, "Y-m-d H:i:s"),
        checkpoint,
        m.wamid,
        source,
    )


@register.simple_tag(takes_context=True)
def flag_form(context: template.Context, url: str, summary: Any, note_id: Any) -> SafeString:
    """The form to raise a flag on a message or a conversation (the flagform partial)."""
    if not _allowed(context, "review.raise_flag"):
        return mark_safe("")
    return format_html(
        '<details class="flagform"><summary>{}</summary>\n'
        '  <form method="post" action="{}">{}\n'
        '    <label for="note-{}">Why does this need review?</label>\n'
        '    <textarea name="note" id="note-{}" rows="2" required maxlength="2000"></textarea>\n'
        '    <button type="submit" class="small">Raise flag</button>\n'
        "  </form></details>",
        summary,
        url,
        mark_safe(_csrf(context)),  # noqa: S308 - Django's own hidden input
        note_id,
        note_id,
    )


# An address without a reverse() a row: reverse() was about a fifth of the search page's
# rendering, a tenth of the conversation list's (50 rows) and two of a transcript row's (its
# flag and tag forms). Reversed once per name, arguments, script prefix and URLconf (what
# reverse() itself depends on); an address with an id is that pattern with the id put in.
_PK = 987654321


@functools.lru_cache(maxsize=128)
def _reversed(name: str, args: tuple[int, ...], prefix: str, urlconf: str | None) -> str:
    return reverse(name, args=list(args), urlconf=urlconf)


def reversed_once(name: str, *args: int) -> str:
    """What reverse(name, args=args) gives, reversed once a process for the same arguments
    (templates/base.html's links through clientwindow's `named_url`; `pk_url`)."""
    return _reversed(name, args, get_script_prefix(), get_urlconf())


@register.simple_tag
def pk_url(name: str, pk: int) -> str:
    """What {% url name pk %} gives, for a URL whose only argument is a whole number."""
    return reversed_once(name, _PK).replace(str(_PK), str(int(pk)))


@register.filter
def conversation_url(pk: int) -> str:
    """What {% url 'review:conversation' pk %} gives."""
    return pk_url("review:conversation", pk)


@register.filter
def preview(text: str, length: int) -> str:
    """The first `length` characters of a message, "…" last when cut: truncatechars without
    its Unicode normalisation, which cost the conversation list ~0.2 ms a row."""
    return text if len(text) <= length else text[: length - 1] + "…"


@register.simple_tag
def search_people(people: Iterable[Any]) -> SafeString:
    """The search page's "Clients matching" rows (search.Person), written here: the template's
    loop with its lookups, filters and url tags was most of the page's rendering (as
    `search_hits`)."""
    rows = []
    for c in people:
        counted = (
            f" · {_e(localize(c.message_count))} messages, last {when(c.last_message_at)}"
            if c.message_count is not None
            else ""
        )
        rows.append(
            f'<li><a href="{_e(conversation_url(c.pk))}">+{_e(c.wa_id)}</a>'
            f' <span class="muted">{_e(c.channel_name)}{counted}</span></li>'
        )
    return mark_safe("".join(rows))  # noqa: S308 - every value escaped or already safe


@register.simple_tag
def search_hits(hits: Iterable[Any]) -> SafeString:
    """The search page's hits as <li> rows: what the message is, whose, where and when, its
    phone-export provenance and its highlighted snippet (already escaped: search.highlight).
    Written with `_e`, not format_html: ~0.5 ms of a page of 25."""
    rows = []
    for hit in hits:
        m = hit.message  # a search.Shown
        who = f"chat “{_e(hit.chat)}”" if hit.chat else f"+{_e(m.wa_id or m.group_id)}"
        name = f"{_e(hit.name)} " if hit.name else ""
        also = "".join(
            f'<span class="provenance small muted">{_e(capfirst(e.also))}</span>'
            for e in hit.also_in
        )
        rows.append(
            f'<li><a href="{_e(conversation_url(m.conversation_id))}?at={m.pk}#m{m.pk}"'
            ' class="hit">\n'
            f'      <span class="meta">{"↗ firm to" if m.direction == "out" else "↙ from"} '
            f"{name}{who} · {_e(m.channel_name)} · {_e(m.type)} · {when(m.sent_at)}</span>\n"
            f"      {_provenance(hit.imported)}{also}\n"
            f'      <span class="snippet">{hit.snippet}</span></a></li>'
        )
    if not rows:
        return mark_safe("<li>No messages match.</li>")
    return mark_safe("\n".join(rows))  # noqa: S308 - every value escaped or already safe


def _provenance(entry: Any) -> SafeString | str:
    if entry is None:
        return ""
    warnings = len(entry.warnings)
    return format_html(
        '<span class="provenance small"><span class="badge imported">{}</span>{}</span>',
        entry.label,
        format_html(" · ⚠ {} import warning{}", warnings, "s" if warnings != 1 else "")
        if warnings
        else "",
    )
