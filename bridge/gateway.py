"""The built-in SMTP gateway for staff replies (aiosmtpd): `manage.py run_mail_gateway`.

Put it behind an MX or a relay for BRIDGE_REPLY_DOMAIN. It accepts mail only for reply
addresses of that domain (any other recipient gets 550 at RCPT, so it is no open relay), caps
sizes at MAIL_MAX_BYTES, and answers 250 only once the message is committed
(bridge.inbound.receive); a database failure answers 451, so the sending server retries.
"""

import logging
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from bridge import inbound
from bridge.models import InboundEmail
from bridge.tokens import conversation_of

logger = logging.getLogger(__name__)


def _ours(address: str) -> bool:
    """A reply address with a valid signature: anything else is refused at RCPT, so the
    sending server (not ClientWindow) tells whoever wrote to it (no backscatter from us)."""
    return conversation_of(address.strip("<>")) is not None


def _store(raw: bytes, mail_from: str, rcpt_tos: list[str]) -> int:
    close_old_connections()
    try:
        return inbound.receive(raw, InboundEmail.Via.SMTP, mail_from, rcpt_tos).pk
    finally:
        close_old_connections()


class Handler:
    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not _ours(address):
            return "550 5.1.1 Not a valid reply address: reply to a ClientWindow notification"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            pk = await sync_to_async(_store, thread_sensitive=False)(
                raw, str(envelope.mail_from or ""), list(envelope.rcpt_tos)
            )
        except Exception:
            logger.exception("mail gateway: could not store a reply email")
            return "451 4.3.0 Could not store the message; try again later"
        logger.info("mail gateway: reply email %s stored (%s bytes)", pk, len(raw))
        return "250 OK: stored"


def controller(host: str | None = None, port: int | None = None) -> Controller:
    kwargs: dict[str, Any] = {
        "hostname": host or settings.MAIL_GATEWAY_HOST,
        "port": port if port is not None else settings.MAIL_GATEWAY_PORT,
        "data_size_limit": settings.MAIL_MAX_BYTES,
        "ident": "ClientWindow mail gateway",
    }
    return Controller(Handler(), **kwargs)
