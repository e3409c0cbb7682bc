"""Reply addresses: reply+<conversation>.<signature>@BRIDGE_REPLY_DOMAIN.

The signature is an HMAC of the conversation id under the project's secret key (and any
SECRET_KEY_FALLBACKS, so a key rotation does not orphan the replies already in mailboxes). It is
written in lowercase base32: mail systems may change the case of a local part, never its letters.
"""

import base64
import hmac
import re
from email.utils import getaddresses

from django.conf import settings
from django.utils.crypto import salted_hmac

SALT = "clientwindow.bridge.reply-address"
PATTERN = re.compile(r"^reply\+c(\d{1,18})\.([a-z2-7]{26})$")


def _signature(conversation_id: int, key: str) -> str:
    digest = salted_hmac(SALT, str(conversation_id), secret=key, algorithm="sha256").digest()
    return base64.b32encode(digest[:16]).decode().rstrip("=").lower()


def reply_address(conversation_id: int) -> str:
    local = f"reply+c{conversation_id}.{_signature(conversation_id, settings.SECRET_KEY)}"
    return f"{local}@{settings.BRIDGE_REPLY_DOMAIN}"


def conversation_of(address: str) -> int | None:
    """The conversation a reply address names, if its signature is ours; else None."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if domain.lower() != settings.BRIDGE_REPLY_DOMAIN.lower():
        return None
    match = PATTERN.match(local.lower())
    if match is None:
        return None
    conversation_id, signature = int(match[1]), match[2]
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if any(hmac.compare_digest(signature, _signature(conversation_id, key)) for key in keys):
        return conversation_id
    return None


def addressed_conversation(recipients: list[str]) -> tuple[int | None, bool]:
    """(conversation, whether any recipient looked like a reply address) from envelope
    recipients and To/Cc/Delivered-To header values."""
    looked_like = False
    for _, address in getaddresses(recipients):
        if address.lower().startswith("reply+"):
            looked_like = True
            found = conversation_of(address)
            if found is not None:
                return found, True
    return None, looked_like
