"""Lexicon policies: terms, phrases and regular expressions that raise flags for review.

Patterns run on what clients wrote, which is hostile input: they are matched with the `regex`
package under a time limit, so no message can stall the worker with catastrophic backtracking.
A message that a pattern cannot finish with in time is flagged (never silently passed).

New messages are scanned once each, in ledger order, by `scan_new_messages` (woken after every
sealed batch and run by a schedule, so a lost wake-up only delays it); `scan_range` re-runs the
policies over a date range on demand. A flag is raised once per message and policy, with the
terms that matched, however often a message is scanned.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import regex
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from archive.models import ChainHead
from messaging.models import Message
from messaging.summaries import ANNOTATION_TYPES
from review.models import Flag, LexiconPolicy, LexiconScan
from review.terms import TermKind, term_pattern, term_problem

CHUNK = 2000
MATCH_SECONDS = 0.05  # per pattern and message; a normal match takes microseconds


@dataclass
class CompiledPolicy:
    policy: LexiconPolicy
    channels: frozenset[int]
    terms: list[tuple[tuple[str, str], Any]]  # compiled `regex` patterns

    def matches(self, message: Message) -> list[str]:
        """What matched: the term or phrase itself, or for a regular expression the text it
        found (a reviewer needs "€50,000", not the pattern)."""
        if self.channels and message.channel_id not in self.channels:
            return []
        found = []
        for (kind, value), pattern in self.terms:
            try:
                hit = pattern.search(message.text, timeout=MATCH_SECONDS)
            except TimeoutError:
                found.append(f"{value} (too slow to evaluate: review by hand)")
                continue
            if hit:
                found.append(hit.group(0) if kind == TermKind.REGEX else value)
        return found


def compile_policies(policies: QuerySet[LexiconPolicy] | None = None) -> list[CompiledPolicy]:
    chosen = policies if policies is not None else LexiconPolicy.objects.filter(active=True)
    compiled = []
    for policy in chosen.prefetch_related("terms", "channels"):
        flags = 0 if policy.case_sensitive else regex.IGNORECASE
        terms = [
            (
                (t.kind, t.value),
                regex.compile(term_pattern(t.kind, t.value, policy.whole_word), flags),
            )
            for t in policy.terms.all()
            if not term_problem(t.kind, t.value)
        ]
        if terms:
            channels = frozenset(c.pk for c in policy.channels.all())
            compiled.append(CompiledPolicy(policy, channels, terms))
    return compiled


def scan(messages: list[Message], policies: list[CompiledPolicy]) -> int:
    """Raise a flag for every (message, policy) that matches (once: a flag already raised is left
    as it is); return how many matches there were."""
    flags = []
    for message in messages:
        if message.type in ANNOTATION_TYPES and message.type != "edit":
            continue
        for compiled in policies:
            matched = compiled.matches(message)
            if matched:
                flags.append(
                    Flag(
                        conversation_id=message.conversation_id,
                        message=message,
                        source=Flag.Source.LEXICON,
                        lexicon_policy=compiled.policy,
                        severity=compiled.policy.severity,
                        matched=matched,
                    )
                )
    Flag.objects.bulk_create(flags, ignore_conflicts=True)
    return len(flags)


# What `scan` and `CompiledPolicy.matches` read of a message: not its search vector or the
# webhook's payload, the largest parts of its row.
SCANNED = ("id", "entry_id", "type", "channel_id", "conversation_id", "text")


def scan_new_messages() -> int:
    """Scan messages sealed since the last scan, up to the committed head of the chain.

    With no active policy the cursor moves to the head without reading a message (as it moved
    past them before, having matched nothing): a worker catching up with an archive it never
    scanned read 2,000 whole rows a transaction for nothing, and took a core from sealing while
    it did (docs/SCALE.md §7j)."""
    raised = 0
    policies = compile_policies()
    while True:
        with transaction.atomic():
            cursor, _ = LexiconScan.objects.select_for_update().get_or_create(pk=1)
            # Every seq below the committed head's size is committed: appends hold the head lock
            # until they commit, so nothing can appear behind the cursor later.
            head = ChainHead.objects.values_list("size", flat=True).first() or 0
            if not policies:
                cursor.scanned_through = head - 1
                cursor.save(update_fields=["scanned_through"])
                return 0
            batch = list(
                Message.objects.filter(entry_id__gt=cursor.scanned_through, entry_id__lt=head)
                .only(*SCANNED)
                .order_by("entry_id")[:CHUNK]
            )
            raised += scan(batch, policies)
            cursor.scanned_through = batch[-1].entry_id if len(batch) == CHUNK else head - 1
            cursor.save(update_fields=["scanned_through"])
        if len(batch) < CHUNK:
            return raised


def scan_range(start: date, end: date, policies: QuerySet[LexiconPolicy] | None = None) -> int:
    """Run policies (all active ones by default) over messages sent from `start` to `end`."""
    compiled = compile_policies(policies)
    if not compiled:
        return 0
    since = timezone.make_aware(datetime.combine(start, time.min))
    until = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min))
    messages = Message.objects.filter(sent_at__gte=since, sent_at__lt=until).order_by("id")
    raised, last = 0, 0
    while True:
        batch = list(messages.filter(id__gt=last)[:CHUNK])
        if not batch:
            return raised
        raised += scan(batch, compiled)
        last = batch[-1].pk
