"""Archives for the retention tests, built through the real write path (webhook bodies sealed by
the sequencer, media stored by messaging.media), and the superuser's hand on the calendar.

PostgreSQL's clock cannot be travelled: sealing stamps entries with clock_timestamp() and
`retention_dispose()` judges expiry by now(). So years passing are stood in for by moving
`retention_record.retain_until` as the superuser with triggers off (`expire`, `extend`): test
setup, as `wipe_archive` is, never product behaviour. It only works on committed rows, hence
the `committed` fixture in every test that disposes of anything.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from messaging import media, simulator
from messaging.graph import Download
from messaging.models import Channel, MediaFile, Message
from retention import holds, policies
from retention.models import Disposition, HoldItem, LegalHold, RetentionPolicy, RetentionRecord
from tests.conftest import superuser_connect
from tests.review.conftest import NOW, PNG, seal

__all__ = ["NOW", "PNG", "seal"]

DESK = simulator.DEMO_CHANNEL["phone_number_id"]
DESK_NUMBER = simulator.DEMO_CHANNEL["display_number"]
OTHER = "100000000000777"  # a second channel, for policies that differ by channel


def envelope(field: str, value: dict[str, Any], channel: str = DESK) -> bytes:
    """A webhook body as Meta sends it, for any channel (simulator._envelope knows one)."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DESK_NUMBER, "phone_number_id": channel},
        **value,
    }
    change = {"field": field, "value": value}
    document = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
    return json.dumps(document, ensure_ascii=False).encode()


def inbound(wa_id: str, name: str, message: dict[str, Any], channel: str = DESK) -> bytes:
    contact = {"profile": {"name": name}, "wa_id": wa_id}
    value = {"contacts": [contact], "messages": [{"from": wa_id, **message}]}
    return envelope("messages", value, channel)


def text(
    wa_id: str,
    name: str,
    wamid: str,
    body: str,
    at: int = NOW,
    channel: str = DESK,
    extra: dict[str, Any] | None = None,
) -> bytes:
    message = {"id": wamid, "timestamp": str(at), "type": "text", "text": {"body": body}}
    return inbound(wa_id, name, {**message, **(extra or {})}, channel)


def reply(to: str, wamid: str, body: str, at: int = NOW, channel: str = DESK) -> bytes:
    """An answer from the business app (an echo), which gets delivery statuses."""
    echo = {
        "from": DESK_NUMBER,
        "to": to,
        "id": wamid,
        "timestamp": str(at),
        "type": "text",
        "text": {"body": body},
    }
    return envelope("smb_message_echoes", {"message_echoes": [echo]}, channel)


def statuses(wamid: str, to: str, at: int = NOW, channel: str = DESK) -> bytes:
    items = [
        {"id": wamid, "status": s, "timestamp": str(at + n), "recipient_id": to}
        for n, s in enumerate(("sent", "delivered", "read"))
    ]
    return envelope("messages", {"statuses": items}, channel)


def reaction(
    wa_id: str,
    name: str,
    wamid: str,
    target: str,
    at: int = NOW,
    channel: str = DESK,
    extra: dict[str, Any] | None = None,
) -> bytes:
    body = {"message_id": target, "emoji": "👍"}
    message = {"id": wamid, "timestamp": str(at), "type": "reaction", "reaction": body}
    return inbound(wa_id, name, {**message, **(extra or {})}, channel)


def edit(
    wa_id: str, name: str, wamid: str, target: str, body: str, at: int = NOW, channel: str = DESK
) -> bytes:
    change = {"original_message_id": target, "message": {"type": "text", "text": {"body": body}}}
    message = {"id": wamid, "timestamp": str(at), "type": "edit", "edit": change}
    return inbound(wa_id, name, message, channel)


def image(
    wa_id: str, name: str, wamid: str, caption: str, at: int = NOW, channel: str = DESK
) -> bytes:
    body = {"id": f"media-{wamid}", "mime_type": "image/png", "caption": caption}
    message = {"id": wamid, "timestamp": str(at), "type": "image", "image": body}
    return inbound(wa_id, name, message, channel)


def store(wamid: str, content: bytes = PNG) -> MediaFile:
    """Store an image message's bytes as the media fetcher does (content-addressed)."""
    message = Message.objects.get(wamid=wamid)
    digest = hashlib.sha256(content).hexdigest()
    media._store(message, f"media-{wamid}", Download(content, digest, "image/png"), "image/png")
    return Message.objects.get(pk=message.pk).attachment.file


def make_channel(phone_number_id: str = DESK, name: str = "Wealth desk") -> Channel:
    return Channel.objects.create(
        name=name, phone_number_id=phone_number_id, display_number=DESK_NUMBER
    )


@dataclass
class Desks:
    desk: Channel
    other: Channel


@pytest.fixture
def desks(settings: Any, tmp_path: Any) -> Desks:
    """Two channels and a private MEDIA_ROOT. Request `db` or `committed` before it."""
    settings.MEDIA_ROOT = tmp_path
    settings.DISPOSITION_APPROVAL_THRESHOLD = 1_000_000  # plans here run at once
    return Desks(make_channel(), make_channel(OTHER, "Second desk"))


def make_policy(
    name: str, days: int, channels: list[Channel], rule: str = "a test rule"
) -> RetentionPolicy:
    policy = RetentionPolicy(name=name, days=days, rule=rule)
    policies.save(policy, None, channels, allow_zero=True)
    return policy


def default_policy() -> RetentionPolicy:
    return RetentionPolicy.objects.get(is_default=True)


# --- Looking things up ---------------------------------------------------------------------


def seq(wamid: str) -> int:
    return Message.objects.get(wamid=wamid).entry_id


def message_seqs(*wamids: str) -> list[int]:
    found = dict(Message.objects.filter(wamid__in=wamids).values_list("wamid", "entry_id"))
    return [found[w] for w in wamids]


def record(entry_seq: int) -> RetentionRecord:
    return RetentionRecord.objects.get(entry_id=entry_seq)


def content_names(entry_seq: int) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM archive_content WHERE seq = %s", [entry_seq])
        return {name for (name,) in cursor.fetchall()}


def all_contents() -> dict[tuple[int, str], bytes]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, name, content FROM archive_content")
        return {(s, n): bytes(c) for s, n, c in cursor.fetchall()}


def db_now() -> Any:
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


# --- Holds ---------------------------------------------------------------------------------


def hold(matter: str = "Matter 1", **scope: Any) -> LegalHold:
    return holds.create(
        None,
        matter=matter,
        reason="Litigation is reasonably anticipated.",
        scope=holds.HoldScope.build(**scope),
    )


def held_seqs(legal_hold: LegalHold) -> set[int]:
    return set(HoldItem.objects.filter(hold=legal_hold).values_list("entry_id", flat=True))


# --- The superuser's calendar (committed rows only) ----------------------------------------


def _move(seqs: Iterable[int], offset: timedelta) -> None:
    with superuser_connect() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE retention_record SET retain_until = now() + %s WHERE seq = ANY(%s)",
            [offset, list(seqs)],
        )


def expire(seqs: Iterable[int], ago: timedelta = timedelta(days=1)) -> None:
    """As if the records' retention had ended `ago`: years passed, standing in."""
    _move(seqs, -ago)


def extend(seqs: Iterable[int], ahead: timedelta = timedelta(days=3650)) -> None:
    """As if the records had years of retention left."""
    _move(seqs, ahead)


def expire_all() -> None:
    with superuser_connect() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE retention_record SET retain_until = now() - interval '1 day'")


def new_disposition() -> Disposition:
    """A disposition row for calling `retention_dispose()` by hand (its records point at it)."""
    return Disposition.objects.create(
        state=Disposition.State.RUNNING, upto_seq=0, cutoff=db_now(), planned=0
    )


def dispose(seqs: list[int], disposition: Disposition | None = None) -> list[tuple[Any, ...]]:
    """Call the database function directly, as the runtime role."""
    disposition = disposition or new_disposition()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq, kind, policy_id FROM retention_dispose(%s::bigint[], %s)",
            [seqs, disposition.pk],
        )
        return sorted(cursor.fetchall())
