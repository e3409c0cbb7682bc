"""Every URL in the URLconf, with hostile values in every path parameter and form field, GET and
POST, as each role: nothing answers 5xx (issue 13, section 2).

Form fields are discovered from the pages themselves (every <form> on every page an administrator
can open, by the URL it posts to), plus the query parameters views read that no form names
(QUERY_PARAMS). Each request runs in a savepoint that is rolled back, so every request sees the
same archive and one that breaks the transaction cannot make the next one fail. The Django admin
is left out: it is Django's own code, and walking its hundreds of URLs would cost minutes.
"""

import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RoutePattern

from exports.jobs import request_export
from exports.models import Export
from exports.scope import Scope
from messaging.models import ConversationSummary
from retention import holds
from retention.holds import HoldScope
from retention.models import LegalHold
from review import flags
from review.models import Flag, FlagComment, SavedSearch
from tests.review.conftest import World, world

__all__ = ["world"]

EXCLUDED = ("admin/",)
ROLES = ("admin_user", "reviewer", "auditor", "legal", "outsider", None)
HOSTILE = [
    "\x00",
    "x\x00y",
    "\ud800",  # a lone surrogate: sent as its (invalid) UTF-8 bytes
    "A" * 10_000,
    "9999-12-31",
    "0001-01-01",
    "-1",
    "99999999999999999999",
    "²",  # str.isdigit() says yes, int() says no
    "[]",
    "null,null",
    "1|²",  # a conversation list cursor: time|id
    "2026-02-30T10:00|1",
    "http://[::1",
]
# What views read from the query string that no <form> on a page names.
QUERY_PARAMS = {
    "review:conversations": ["who", "channel", "tag", "flagged", "sort", "after"],
    "review:conversation": ["at"],
    "review:conversation_messages": ["before", "after"],
    "review:media": ["download"],
    "review:access_log": ["user", "action", "page"],
    "review:leave": ["to"],
    "review:queue": ["state", "policy", "assignee", "page"],
    "review:bulk_decide": ["flag", "query", "outcome", "reason", "escalate_to", "next"],
    "review:save_search": ["name", "query"],
    "whatsapp_webhook": ["hub.mode", "hub.verify_token", "hub.challenge"],
    "bridge:reply": ["submission", "template", "parameters", "text"],
}
# Values a real user would send, where a page's own form would leave a field empty.
PLAUSIBLE = {
    "date_from": "2024-01-01",
    "date_to": "2026-12-31",
    "participant": "+44 7700 900123",
    "participants": "+44 7700 900123",
    "matter": "Smith v Jones",
    "reason": "Because the court asked.",
    "note": "Please look at this.",
    "text": "Looks fine.",
    "name": "My search",
    "query": "q=hello",
    "q": "hello",
    "to": "https://example.com/",
    "number": "+44 7700 900123",
    "format": "pdf",
}
FIELD_VALUES = ["\x00", "\ud800", "A" * 10_000, "9999-12-31", "²", "[]"]
API_VALUES: list[Any] = [*HOSTILE, [], {}, None, -1, 10**30, True, 1.5]


@dataclass
class Route:
    name: str
    template: str  # the path with {param} placeholders
    params: dict[str, str]  # param name -> converter kind ("int", "uuid", "str", "regex")


@dataclass
class Form:
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # name -> default value


class _FormParser(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__()
        self.page = page
        self.forms: list[tuple[str, Form]] = []
        self.loose: dict[str, str] = {}  # fields outside any form (form= attributes, htmx)
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            action = a.get("action") or a.get("hx-post") or self.page
            self.forms.append((action, Form(a.get("method", "get").upper())))
        elif tag in ("input", "select", "textarea", "button") and a.get("name"):
            target = self.forms[-1][1].fields if self.forms else self.loose
            if a["name"] not in target or a.get("value"):
                target[a["name"]] = a.get("value", "")
            self._select = a["name"] if tag == "select" else None
        elif tag == "option" and self._select and self.forms:
            fields = self.forms[-1][1].fields
            if not fields.get(self._select) and a.get("value"):
                fields[self._select] = a["value"]


def walk(patterns: list[Any], prefix: str = "", ns: str = "") -> Iterator[Route]:
    for p in patterns:
        if isinstance(p, URLResolver):
            route, params = _route(p.pattern)
            if (prefix + route).startswith(EXCLUDED):
                continue
            inner = f"{ns}{p.namespace}:" if p.namespace else ns
            for r in walk(p.url_patterns, prefix + route, inner):
                yield Route(r.name, r.template, {**params, **r.params})
        elif isinstance(p, URLPattern):
            route, params = _route(p.pattern)
            yield Route(f"{ns}{p.name or ''}", prefix + route, params)


def _route(pattern: Any) -> tuple[str, dict[str, str]]:
    if isinstance(pattern, RoutePattern):
        text = str(pattern)
    else:
        text = pattern.regex.pattern.lstrip("^").rstrip("$").replace("\\Z", "").replace("\\", "")
    params: dict[str, str] = {}

    def placeholder(m: re.Match[str]) -> str:
        kind, name = (m.group(1) or "str"), m.group(2)
        params[name] = "regex" if m.group(0).startswith("(") else kind
        return "{" + name + "}"

    text = re.sub(r"<(?:(\w+):)?(\w+)>", placeholder, text)
    text = re.sub(r"\(\?P<()(\w+)>[^)]*\)", placeholder, text)
    return text, params


def _encode(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _form_body(fields: dict[str, str]) -> str:
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in fields.items())


@pytest.fixture
def hostile_world(world: World, admin_user: User, auditor: User, reviewer: User) -> dict[str, Any]:
    message = world.message("wamid.xss-text")
    reply = Permission.objects.get(codename="reply_to_client")  # given per user, to reach it
    for user in (admin_user, reviewer):
        user.user_permissions.add(reply)
    flag = flags.raise_flag(reviewer, world.hostile, message, "Looks like a promise of returns.")
    saved = SavedSearch.objects.create(user=admin_user, name="returns", query="q=returns")
    hold = holds.create(
        admin_user,
        matter="Smith",
        reason="court order",
        scope=HoldScope.build(conversations=[world.hostile.pk]),
    )
    export = request_export(auditor, Scope.for_conversation(world.hostile.pk), "csv", queue=False)
    return {
        "conversation": world.hostile.pk,
        "message": world.message("wamid.image").pk,
        "flag": flag.pk,
        "saved": saved.pk,
        "hold": hold.pk,
        "export": str(export.pk),
    }


def _plausible(route: Route, ids: dict[str, Any]) -> str:
    kind = route.template.split("/")[0]
    chosen = {
        "conversations": ids["conversation"],
        "messages": ids["message"],
        "review": ids["flag"],
        "search": ids["saved"],
        "holds": ids["hold"],
    }.get(kind, 1)
    values = {}
    for name, converter in route.params.items():
        values[name] = ids["export"] if converter in ("uuid", "regex") else str(chosen)
    return "/" + route.template.format(**values)


def _hostile_paths(route: Route, ids: dict[str, Any]) -> list[str]:
    base = _plausible(route, ids)
    out = []
    for name, converter in route.params.items():
        bad = ["0", "2147483648", "9" * 30] if converter == "int" else []
        bad += [str(uuid.uuid4())] if converter in ("uuid", "regex") else []
        bad += (
            ["not-a-uuid", "null,null", "%00", "%ED%A0%80", "A" * 5000]
            if converter == "regex"
            else []
        )
        for value in bad:
            others = {
                n: (ids["export"] if c in ("uuid", "regex") else "1")
                for n, c in route.params.items()
            }
            out.append("/" + route.template.format(**{**others, name: value}))
    return [p for p in out if p != base]


def _discover(admin: Client, pages: list[str]) -> dict[str, dict[str, Form]]:
    """url name -> method -> fields, from every form on every page."""
    found: dict[str, dict[str, Form]] = {}
    for page in pages:
        response = admin.get(page)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        parser = _FormParser(page)
        parser.feed(response.content.decode())
        for action, form in parser.forms:
            try:
                name = resolve(urlsplit(action).path or page).view_name
            except Resolver404:
                continue
            known = found.setdefault(name, {}).setdefault(form.method, Form(form.method))
            known.fields.update(
                {k: v for k, v in form.fields.items() if k != "csrfmiddlewaretoken"}
            )
    return found


@dataclass
class Outcome:
    failures: list[str] = field(default_factory=list)
    requests: int = 0


def _send(
    client: Client, method: str, path: str, fields: dict[str, str], outcome: Outcome, who: str
) -> tuple[int, bool]:
    """(status, refused): refused when the role was turned away before the view read anything."""
    body = _form_body(fields)
    try:
        with transaction.atomic():
            if method == "GET":
                response = client.get(path, QUERY_STRING=body)
            else:
                response = client.generic(
                    "POST", path, body, content_type="application/x-www-form-urlencoded"
                )
            raise _Undo(response)
    except _Undo as undone:
        response = undone.args[0]
    outcome.requests += 1
    status = response.status_code
    if status >= 500:
        shown = {k: (v[:20] + "…" if len(v) > 20 else v) for k, v in fields.items()}
        outcome.failures.append(f"{status} {who} {method} {path[:80]} {shown}"[:300])
    login = status == 302 and response["Location"].startswith("/login/")
    return status, status in (401, 403) or login


def _send_json(client: Client, path: str, body: str, outcome: Outcome, who: str) -> None:
    try:
        with transaction.atomic():
            response = client.generic("POST", path, body, content_type="application/json")
            raise _Undo(response.status_code)
    except _Undo as undone:
        status = undone.args[0]
    outcome.requests += 1
    if status >= 500:
        outcome.failures.append(f"{status} {who} POST {path} json {body[:120]!r}")


class _Undo(Exception):  # a signal to roll the request back, not an error
    pass


def _json_bodies(ids: dict[str, Any]) -> Iterator[str]:
    base = {
        "format": "pdf",
        "scope": {
            "kind": "conversation",
            "conversation": ids["conversation"],
            "date_from": "2024-01-01",
            "date_to": "2026-12-31",
        },
    }
    search = {"format": "csv", "scope": {"kind": "search", "query": {"q": "hello"}}}
    for value in API_VALUES:
        yield json.dumps({**base, "format": value})
        for key in ("kind", "conversation", "date_from", "date_to", "hold", "participant"):
            yield json.dumps({**base, "scope": {**base["scope"], key: value}})
        yield json.dumps({**search, "scope": {"kind": "search", "query": {"q": value}}})
        yield json.dumps({**search, "scope": {"kind": "search", "query": {"date_to": value}}})
        if isinstance(value, str):
            yield json.dumps({**search, "scope": {"kind": "search", "query": {value: "x"}}})
        yield json.dumps({**base, "scope": value})
        yield json.dumps(value)
    yield "[" * 5000 + "]" * 5000
    yield '{"format": "pdf", "scope": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"
    yield "{not json"
    yield ""


def _walk(
    route: Route,
    method: str,
    client: Client,
    who: str,
    forms: dict[str, dict[str, Form]],
    ids: dict[str, Any],
    outcome: Outcome,
) -> None:
    """One URL, one method, one role: plausible values first; then every field hostile at
    once; then (as the administrator, who reaches the most code) one hostile field at a time
    among plausible ones, and hostile path parameters. A 405, or a role turned away at the door,
    is shown with fewer requests; the other roles take half the values each."""
    path = _plausible(route, ids)
    known = forms.get(route.name, {})
    names = set(QUERY_PARAMS.get(route.name, []))
    for form in known.values():
        names |= set(form.fields)
    base = {n: PLAUSIBLE.get(n, "") for n in names}
    base.update({n: v for n, v in known.get(method, Form(method)).fields.items() if v})
    status, refused = _send(client, method, path, base, outcome, who)
    if status == 405:
        return
    if refused:
        values = HOSTILE[:3]
    elif who == "admin_user":
        values = HOSTILE
    else:  # the other roles share the list out between them, half each
        values = HOSTILE[len(who) % 2 :: 2]
    for value in values:
        _send(client, method, path, {n: value for n in names} or {"x": value}, outcome, who)
    if refused or who != "admin_user":
        return
    for name in sorted(names):
        for value in FIELD_VALUES:
            _send(client, method, path, {**base, name: value}, outcome, who)
    for bad_path in _hostile_paths(route, ids):
        _send(client, method, bad_path, base, outcome, who)


def test_it_answers_no_request_with_a_5xx(
    request: pytest.FixtureRequest, hostile_world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Thousands of 4xx warnings cost time and say nothing here; a 5xx is collected below.
    monkeypatch.setattr(logging.getLogger("django.request"), "disabled", True)
    ids = hostile_world
    routes = [r for r in walk(get_resolver().url_patterns) if r.name]
    clients: dict[str, Client] = {}
    for role in ROLES:
        client = Client(raise_request_exception=False)
        if role is not None:
            client.force_login(request.getfixturevalue(role))
        clients[role or "anonymous"] = client
    forms = _discover(clients["admin_user"], [_plausible(r, ids) for r in routes])
    outcome = Outcome()
    for route in routes:
        for who, client in clients.items():
            if route.name == "logout" and who != "anonymous":
                continue  # it would end the session the rest of the walk uses
            for method in ("GET", "POST"):
                _walk(route, method, client, who, forms, ids, outcome)
        if route.name == "api-exports-list":
            for who, client in clients.items():
                bodies = list(_json_bodies(ids))
                for body in bodies if who in ("admin_user", "auditor") else bodies[-4:]:
                    _send_json(client, "/" + route.template, body, outcome, who)
    summary = f"{len(outcome.failures)} of {outcome.requests} requests answered 5xx"
    assert outcome.failures == [], summary + ":\n" + "\n".join(outcome.failures[:80])
    assert outcome.requests > 1000  # the walk did walk


# --- one regression test per case of issue 13, section 2 ----------------------------------------

API = "/api/v1/exports/"
TOO_LATE = "Give a date between 1900-01-01 and 2200-12-31."


def _as(user: User) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def test_it_answers_400_for_nul_in_access_log_user(world: World, admin_user: User) -> None:
    response = _as(admin_user).get("/access-log/?user=%00")
    assert response.status_code == 400
    assert b"NUL" in response.content


def test_it_answers_400_for_nul_in_conversations_who(world: World, reviewer: User) -> None:
    assert _as(reviewer).get("/conversations/?who=%00").status_code == 400


def test_it_answers_400_for_a_search_dated_9999_12_31(world: World, reviewer: User) -> None:
    response = _as(reviewer).get("/search/", {"date_to": "9999-12-31"})
    assert response.status_code == 400
    assert TOO_LATE in response.content.decode()


def test_it_answers_400_for_a_hold_dated_9999_12_31(world: World, legal: User) -> None:
    data = {"matter": "Smith", "reason": "court", "date_to": "9999-12-31"}
    response = _as(legal).post("/holds/new/", data)
    assert response.status_code == 400
    assert TOO_LATE in response.content.decode()
    assert not LegalHold.objects.exists()


def test_it_answers_400_for_a_hold_on_a_saved_search_dated_9999_12_31(
    world: World, legal: User
) -> None:
    saved = SavedSearch.objects.create(user=legal, name="old", query="date_to=9999-12-31")
    data = {"matter": "Smith", "reason": "court", "saved_search": saved.pk}
    response = _as(legal).post("/holds/new/", data)
    assert response.status_code == 400
    assert "The search cannot be held" in response.content.decode()


def test_it_refuses_to_save_a_search_dated_9999_12_31(world: World, reviewer: User) -> None:
    client = _as(reviewer)
    client.post("/search/saved/", {"name": "late", "query": "date_to=9999-12-31"})
    assert not SavedSearch.objects.exists()
    assert TOO_LATE in client.get("/search/").content.decode()


def test_it_refuses_an_export_dated_9999_12_31_when_requested(world: World, legal: User) -> None:
    data = {"format": "csv", "scope": "conversation", "conversation": world.amelia.pk}
    response = _as(legal).post("/exports/new/", {**data, "date_to": "9999-12-31"})
    assert response.status_code == 400
    assert TOO_LATE in response.content.decode()
    scope = {"kind": "conversation", "conversation": world.amelia.pk, "date_to": "9999-12-31"}
    answer = _as(legal).post(
        API, {"format": "csv", "scope": scope}, content_type="application/json"
    )
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"scope": {"date_to": [TOO_LATE]}}
    assert not Export.objects.exists()


def test_it_refuses_a_search_export_dated_9999_12_31(world: World, legal: User) -> None:
    scope = {"kind": "search", "query": {"date_to": "9999-12-31"}}
    answer = _as(legal).post(
        API, {"format": "csv", "scope": scope}, content_type="application/json"
    )
    assert answer.status_code == 400
    assert TOO_LATE in answer.json()["errors"]["scope"][0]


def test_it_answers_400_for_a_leave_link_with_a_broken_ipv6_host(
    world: World, reviewer: User
) -> None:
    response = _as(reviewer).get("/leave/", {"to": "http://[::1"})
    assert response.status_code == 400
    assert response.content == b"That is not a valid link."


@pytest.mark.parametrize("pk", ["not-a-uuid", "null,null"])
@pytest.mark.parametrize("tail", ["", "download/"])
def test_it_answers_404_for_an_api_export_id_that_is_not_a_uuid(
    world: World, legal: User, pk: str, tail: str
) -> None:
    response = _as(legal).get(f"{API}{pk}/{tail}")
    assert response.status_code == 404
    assert response.json() == {
        "type": "urn:clientwindow:problem:not_found",
        "title": "Not Found",
        "status": 404,
        "detail": "No export has this id.",
    }


def test_it_answers_400_for_an_api_export_request_nested_5000_deep(
    world: World, legal: User
) -> None:
    body = '{"format": "csv", "scope": ' + '{"a": ' * 5000 + "1" + "}" * 5001
    response = _as(legal).post(API, body, content_type="application/json")
    assert response.status_code == 400
    assert "nested at most 20 levels" in response.json()["detail"]


def test_it_answers_400_for_a_nul_query_key_in_an_api_export_request(
    world: World, legal: User
) -> None:
    body = {"format": "csv", "scope": {"kind": "search", "query": {"\x00": "x"}}}
    response = _as(legal).post(API, body, content_type="application/json")
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
    assert not Export.objects.exists()


def _free_text(world: World, reviewer: User, admin_user: User) -> dict[str, tuple[str, str]]:
    flag = flags.raise_flag(reviewer, world.hostile, None, "Please look.")
    flags.claim(flag, admin_user)
    message = world.message("wamid.xss-text").pk
    return {
        "saved search name": ("/search/saved/", "name"),
        "saved search query": ("/search/saved/", "query"),
        "flag note on a message": (f"/messages/{message}/flag/", "note"),
        "flag note on a conversation": (f"/conversations/{world.hostile.pk}/flag/", "note"),
        "review comment": (f"/review/{flag.pk}/comment/", "text"),
        "decision reason": (f"/review/{flag.pk}/decide/", "reason"),
        "bulk decision reason": ("/review/bulk/", "reason"),
    }


FREE_TEXT = [
    "saved search name",
    "saved search query",
    "flag note on a message",
    "flag note on a conversation",
    "review comment",
    "decision reason",
    "bulk decision reason",
]
FILLED = {"name": "x", "query": "q=x", "note": "x", "text": "x", "reason": "x"}


def _post_nul(world: World, reviewer: User, admin_user: User, case: str) -> Any:
    url, field = _free_text(world, reviewer, admin_user)[case]
    flag = Flag.objects.get(note="Please look.")
    data = {**FILLED, "outcome": "compliant", "flag": flag.pk, field: "a\x00b"}
    return _as(admin_user).post(url, data)


@pytest.mark.parametrize("case", FREE_TEXT)
def test_it_answers_400_for_nul_in_free_text(
    world: World, reviewer: User, admin_user: User, case: str
) -> None:
    response = _post_nul(world, reviewer, admin_user, case)
    assert response.status_code == 400
    assert b"NUL" in response.content


@pytest.mark.parametrize("case", FREE_TEXT)
def test_it_refuses_nul_in_free_text_behind_the_middleware_too(
    world: World, reviewer: User, admin_user: User, case: str, settings: Any
) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "boundary" not in m]
    response = _post_nul(world, reviewer, admin_user, case)
    assert response.status_code == 302
    assert Flag.objects.count() == 1 and Flag.objects.get().is_open
    assert not SavedSearch.objects.exists() and not FlagComment.objects.exists()


def test_it_answers_a_reply_template_id_that_is_no_number_with_a_notice(
    world: World, reviewer: User
) -> None:
    reviewer.user_permissions.add(Permission.objects.get(codename="reply_to_client"))
    client = _as(reviewer)
    response = client.post(f"/conversations/{world.hostile.pk}/reply/", {"template": "²"})
    assert response.status_code == 302
    assert "not approved" in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize("cursor", ["1|²", "2026-02-30T10:00:00+00:00|1"])
def test_it_answers_a_conversation_list_cursor_that_is_no_moment_with_the_first_page(
    world: World, reviewer: User, cursor: str
) -> None:
    response = _as(reviewer).get("/conversations/", {"after": cursor})
    assert response.status_code == 200
    assert len(response.context["rows"]) == ConversationSummary.objects.count() > 1
