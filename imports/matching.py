"""How an imported entry is recognised as a message the archive already holds (docs/IMPORTS.md).

- Its time: the export's wall-clock time read in the declared time zone. A time that does not
  exist there (a spring-forward gap) is shifted forward and flagged `dst-gap`; one that occurs
  twice (the autumn fold) is read as its first occurrence and flagged `dst-ambiguous`.
- Its match key: what two employees' exports of one conversation have in common: the
  conversation, the UTC minute (Android exports have no seconds), who wrote it (the mapped
  participant, the custodian, or a named unknown) and the body without invisible marks, with
  attachments and media placeholders reduced to "media" (file names differ between phones), and
  the occurrence of that key within the file (a message repeated in one minute is two messages).
- A captured message it is: the same conversation and side, the same body (shadowed), within
  90 seconds.
"""

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from messaging.models import PHONE_EXPORT, Message

from .parsing import shadow

CAPTURE_WINDOW = timedelta(seconds=90)
MINUTE = "%Y-%m-%dT%H:%M"
MEDIA_KINDS = frozenset({"attachment", "media_omitted", "view_once"})


def aware(local: datetime, zone: ZoneInfo) -> tuple[datetime, str | None]:
    """(the UTC instant, a DST flag or None) of a naive wall-clock time in `zone`."""
    first = local.replace(tzinfo=zone, fold=0)
    if first.utcoffset() == local.replace(tzinfo=zone, fold=1).utcoffset():
        return first.astimezone(UTC), None
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local:
        return instant, "dst-gap"  # fold=0 reads it with the offset before the gap: forward
    return instant, "dst-ambiguous"


def body_of(kind: str, text: str) -> str:
    """What the match compares: the shadowed body, or "media" for any file or placeholder."""
    return "\x00media" if kind in MEDIA_KINDS else shadow(text)


class Keys:
    """Match keys of one file, counting occurrences (state kept across batches of one run)."""

    def __init__(self, conversation_id: int) -> None:
        self.conversation = str(conversation_id)
        # occurrences by a 16-byte digest of the key's base, not the base itself (which holds the
        # body): a million-message export then needs ~100 MB here, not ~250 MB
        self.seen: dict[bytes, int] = defaultdict(int)

    def key(self, instant: datetime, identity: str, kind: str, text: str) -> str:
        # "%Y-%m-%dT%H:%M" (isoformat is the cheaper spelling; it pads a year before 1000)
        minute = instant.isoformat()[:16] if instant.year >= 1000 else instant.strftime(MINUTE)
        base = "\x1f".join((self.conversation, minute, identity, body_of(kind, text)))
        seen = hashlib.blake2b(base.encode(), digest_size=16).digest()
        occurrence = self.seen[seen]
        self.seen[seen] = occurrence + 1
        return hashlib.sha256(f"{base}\x1f{occurrence}".encode()).hexdigest()


class Captured:
    """Captured messages of one conversation near a batch's times, by (side, sender, body)."""

    def __init__(self, conversation_id: int, instants: Iterable[datetime]) -> None:
        times = list(instants)
        self.by_body: dict[tuple[str, int | None, str], list[tuple[datetime, int, int]]] = {}
        self.taken: set[int] = set()
        if not times:
            return
        rows = (
            Message.objects.filter(
                conversation_id=conversation_id,
                sent_at__gte=min(times) - CAPTURE_WINDOW,
                sent_at__lte=max(times) + CAPTURE_WINDOW,
            )
            .exclude(source=PHONE_EXPORT)
            .values_list("pk", "entry_id", "direction", "sender_id", "text", "sent_at")
        )
        for pk, seq, direction, sender_id, text, sent_at in rows:
            if sent_at is None:
                continue
            key = (direction, sender_id if direction == "in" else None, shadow(text))
            self.by_body.setdefault(key, []).append((sent_at, pk, seq))

    @property
    def empty(self) -> bool:
        """Nothing captured near the batch: no entry of it needs looking up."""
        return not self.by_body

    def find(
        self, direction: str, sender_id: int | None, text: str, instant: datetime
    ) -> tuple[int, int] | None:
        """(id, seq) of the captured message this entry is (each is matched once)."""
        key = (direction, sender_id if direction == "in" else None, shadow(text))
        for sent_at, pk, seq in self.by_body.get(key, ()):
            if pk not in self.taken and abs(sent_at - instant) < CAPTURE_WINDOW:
                self.taken.add(pk)
                return pk, seq
        return None
