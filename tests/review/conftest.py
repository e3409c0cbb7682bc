"""A small archive built through the real write path: webhook bodies sealed by the sequencer,
media stored by the media module. Shared by the review tests."""

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.db.models import QuerySet

from messaging import media, simulator
from messaging.graph import Download
from messaging.models import Channel, Conversation, Delivery, Message
from messaging.sequencer import process_deliveries
from review.models import Tag

NOW = 1_790_000_000  # 2026-09-21, a fixed moment: no wall clock in tests
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082"
)


def envelope(field: str, value: dict[str, Any]) -> bytes:
    return simulator._envelope(field, value)


def inbound(wa_id: str, name: str, message: dict[str, Any]) -> bytes:
    contact = {"profile": {"name": name}, "wa_id": wa_id}
    return envelope("messages", {"contacts": [contact], "messages": [{"from": wa_id, **message}]})


def explain(
    rows: QuerySet[Any], *, verbose: bool = False, seqscan: bool = True, bitmapscan: bool = True
) -> dict[str, Any]:
    """PostgreSQL's plan of `rows` (its top node, as EXPLAIN's JSON gives it). seqscan=False
    prices sequential scans out, so that any index that can serve a condition is used for it;
    bitmapscan=False bitmap scans, so that a few rows are read from an index in its order as
    they would be among millions."""
    sql, params = rows.query.sql_with_params()
    options = "VERBOSE, FORMAT JSON" if verbose else "FORMAT JSON"
    with connection.cursor() as cursor:
        cursor.execute(f"SET enable_seqscan = {'on' if seqscan else 'off'}")
        cursor.execute(f"SET enable_bitmapscan = {'on' if bitmapscan else 'off'}")
        try:
            cursor.execute(f"EXPLAIN ({options}) {sql}", params)
            (document,) = cursor.fetchone()
        finally:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_bitmapscan")
    plan: dict[str, Any] = (document if isinstance(document, list) else json.loads(document))[0]
    return plan["Plan"]  # type: ignore[no-any-return]


def seal(*bodies: bytes) -> None:
    for body in bodies:
        Delivery.objects.create(body=body, headers={})
    process_deliveries()


@dataclass
class World:
    channel: Channel
    amelia: Conversation
    hostile: Conversation

    def message(self, wamid: str) -> Message:
        return Message.objects.get(wamid=wamid)


@pytest.fixture
def world(db: None, settings: Any, tmp_path: Any) -> World:
    settings.MEDIA_ROOT = tmp_path
    channel = Channel.objects.create(
        name=simulator.DEMO_CHANNEL["name"],
        phone_number_id=simulator.DEMO_CHANNEL["phone_number_id"],
        display_number=simulator.DEMO_CHANNEL["display_number"],
    )
    seal(*simulator.demo_bodies(NOW))
    hostile_number, t = "15550001234", str(NOW + 100)
    seal(
        inbound(
            hostile_number,
            XSS,
            {
                "id": "wamid.xss-text",
                "timestamp": t,
                "type": "text",
                "text": {"body": XSS + " see https://evil.example/x?a=1"},
            },
        ),
        inbound(
            hostile_number,
            XSS,
            {
                "id": "wamid.xss-doc",
                "timestamp": t,
                "type": "document",
                "document": {
                    "id": "media-doc",
                    "filename": XSS + ".pdf",
                    "mime_type": "application/pdf",
                    "caption": "quarterly report",
                },
            },
        ),
        inbound(
            hostile_number,
            XSS,
            {
                "id": "wamid.image",
                "timestamp": t,
                "type": "image",
                "image": {"id": "media-img", "mime_type": "image/png", "caption": "my passport"},
            },
        ),
        inbound(
            hostile_number,
            XSS,
            {
                "id": "wamid.deleted",
                "timestamp": t,
                "type": "text",
                "text": {"body": "guaranteed returns, tell nobody"},
            },
        ),
        inbound(
            hostile_number,
            XSS,
            {
                "id": "wamid.revoke",
                "timestamp": str(NOW + 101),
                "type": "revoke",
                "revoke": {"original_message_id": "wamid.deleted"},
            },
        ),
    )
    image = Message.objects.get(wamid="wamid.image")
    media._store(
        image, "media-img", Download(PNG, hashlib.sha256(PNG).hexdigest(), "image/png"), "image/png"
    )
    Tag.objects.create(name="Suitability", colour="#aa3300")
    amelia = Conversation.objects.get(participant__wa_id=simulator.DEMO_CLIENTS[0][0])
    hostile = Conversation.objects.get(participant__wa_id=hostile_number)
    return World(channel, amelia, hostile)


def dumps(value: Any) -> str:
    return json.dumps(value)


@contextlib.contextmanager
def work_mem_seen(asked: Callable[[str], bool]) -> Iterator[list[tuple[bool, str]]]:
    """The work_mem each statement sent inside the block ran with (SHOW work_mem just before
    it), and whether `asked` picks it out; settings, savepoints and EXPLAIN left out."""
    seen: list[tuple[bool, str]] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        skipped = ("SAVEPOINT", "RELEASE", "SHOW", "EXPLAIN")
        if "set_config" not in sql and not sql.startswith(skipped):
            with connection.cursor() as cursor:
                cursor.execute("SHOW work_mem")
                seen.append((asked(sql), cursor.fetchone()[0]))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        yield seen


def planner_rows_as_at_10m(monkeypatch: pytest.MonkeyPatch, rows: dict[str, float]) -> None:
    """search.planned_rows gives `rows` for the words' conditions they name (as str() of a
    queryset prints them, its parameters unquoted: "'portfolio' & 'the'"), as the planner does
    at 10M messages; any other statement its own estimate. A test's few uncommitted rows have
    no statistics, and the planner expects one row of any word."""
    from review import search

    planner = search.planned_rows

    def planned(queryset: Any) -> float:
        condition = re.search(r"@@ (.*?)::tsquery", str(queryset.query))
        words = condition.group(1) if condition else ""
        return rows[words] if words in rows else planner(queryset)

    monkeypatch.setattr(search, "planned_rows", planned)
