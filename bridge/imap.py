"""Polling an IMAP mailbox for staff replies (imap-tools), when IMAP_URL is set:
imaps://user:password@host[:port]/FOLDER (imap:// for plain IMAP on a trusted network).

Each unseen message is fetched as its exact bytes, stored (bridge.inbound.receive) and only then
flagged \\Seen, so a crash between the two can only store a message twice, never lose one; the
second copy is recognised by its Message-ID and never sent again (bridge/inbound.py). Nothing is
ever expunged: the mailbox is the staff's, and messages others marked \\Deleted stay theirs."""

from urllib.parse import unquote, urlsplit

from django.conf import settings
from imap_tools import AND, MailBox, MailBoxUnencrypted
from imap_tools.errors import MailboxFlagError

from bridge import inbound
from bridge.models import InboundEmail

LIMIT = 100


def poll(url: str | None = None) -> int:
    url = url if url is not None else settings.IMAP_URL
    if not url:
        return 0
    parts = urlsplit(url)
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    box_class = MailBox if parts.scheme == "imaps" else MailBoxUnencrypted
    port = parts.port or (993 if parts.scheme == "imaps" else 143)
    stored = 0
    box = box_class(parts.hostname or "localhost", port=port, timeout=60)
    try:
        box.login(unquote(parts.username or ""), unquote(parts.password or ""), folder)
    except BaseException:
        box.client.shutdown()  # a refused login (or folder) leaves no connection open
        raise
    with box:
        for uid in box.uids(AND(seen=False))[:LIMIT]:
            status, data = box.client.uid("fetch", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in data if isinstance(item, tuple)), None)
            if status != "OK" or not isinstance(raw, bytes):
                continue
            inbound.receive(raw, InboundEmail.Via.IMAP)
            stored += 1
            # not box.flag(): imap-tools follows its STORE with an EXPUNGE of the whole folder
            flagged = box.client.uid("STORE", uid, "+FLAGS.SILENT", "(\\Seen)")
            if flagged[0] != "OK":
                raise MailboxFlagError(flagged, "OK")
    return stored
