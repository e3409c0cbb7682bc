"""A synthetic WhatsApp archive for the reviewer-portal benchmarks (stdlib only, deterministic).

`Archive(messages).deliveries(per_delivery)` yields Meta-shaped webhook bodies, the way the
webhook stores them: one `entry` whose `changes` each carry one message (inbound: `messages`
with the client's contact and profile name; outbound: `smb_message_echoes`), as Meta batches
several updates into one POST. tests/performance/test_bench_review.py stores them as Delivery
rows and seals them with messaging.sequencer.process_deliveries().

The shape of the archive:
- ~2,000 clients, each with one conversation on one of three channels (50/30/20 %), activity
  skewed (log-normal weights), numbers from four countries, names from a first x last list;
- one client (`BIG_WA_ID`) with exactly `big` messages (5,000 by default), spread over the
  year, with a few replies, reactions and the sent/delivered/read statuses of its outbound
  messages (the transcript shows those), so that opening it decorates a realistic window;
- 55 % inbound, 45 % outbound; timestamps rising over one year (ending at NOW);
- texts of 20-40 words drawn from a 40,000-word vocabulary with a Zipf (s = 1) distribution:
  the top words appear in most messages, the rarest in a few dozen per million;
- 3 % documents with a file name made of vocabulary words (half with a caption);
- 5 % replies quoting the client's previous message.

The queries the benchmark runs are drawn from the same vocabulary (`QueryMaterial`): rare and
common words, pairs, phrases sampled from generated texts (so they do occur), partial numbers.
"""

import itertools
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

NOW = 1_790_000_000  # 2026-09-21 (as tests/review): the archive's last message
YEAR = 365 * 24 * 3600
START = NOW - YEAR

CHANNELS = [
    {
        "name": "Wealth desk London",
        "phone_number_id": "100000000000101",
        "display_number": "442079460101",
        "waba_id": "200000000000101",
    },
    {
        "name": "Private banking Paris",
        "phone_number_id": "100000000000102",
        "display_number": "33140200102",
        "waba_id": "200000000000102",
    },
    {
        "name": "Family office Geneva",
        "phone_number_id": "100000000000103",
        "display_number": "41225550103",
        "waba_id": "200000000000103",
    },
]
CLIENTS = 2_000
BIG_CLIENT = 0  # on channel 0
VOCABULARY = 40_000
ZIPF_S = 1.0


def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words(
    "Amelia Oliver Isla George Ava Noah Mia Arthur Ivy Leo Freya Oscar Lily Harry Grace Jack "
    "Emily Charlie Sophie Thomas Étienne Camille Louis Chloé Hugo Léa Jules Manon Lucas Inès "
    "Jonas Lena Felix Hanna Paul Marie Elias Anna Lukas Clara Priya Arjun Ananya Rohan Mei Wei "
    "Hana Kenji Yuki Sofia Mateo Lucia Diego Valentina Omar Layla Yusuf Amira Sven Astrid"
)
LAST = _words(
    "Hart Smith Jones Taylor Brown Williams Wilson Evans Thomas Roberts Laurent Martin Bernard "
    "Dubois Moreau Lefèvre Girard Bonnet Berg Müller Schmidt Schneider Fischer Weber Wagner "
    "Becker Natarajan Sharma Iyer Chen Wang Li Zhang Sato Suzuki Tanaka Garcia Rodriguez Lopez "
    "Fernandez Rossi Russo Bianchi Romano Haddad Khalil Nasser Andersson Johansson Nilsson "
    "Kowalski Nowak Novak Horvat Papadopoulos Costa Silva Santos Murphy Kelly"
)

# The most frequent words, most frequent first (a chat at a wealth manager's); the rest of the
# vocabulary is made-up words, so that rare words are rare for certain.
COMMON = _words(
    "the to and you i a of for is on we it this in be can that please with your will me "
    "have are thanks at my as if fund so would our just portfolio not from call could send "
    "by do about next statement morning week transfer account today 1 2 10 100 12 15 30 50 "
    "500 1000 2025 2026 confirm meeting tomorrow bond equity dividend tax year an let know "
    "good like also any there all but or what when market price shares position cash "
    "allocation review performance risk report invest investment sell buy client time one "
    "us up new should thank kind regards dear best hello hi yes no ok sure great monday "
    "tuesday wednesday thursday friday afternoon evening email document signed form "
    "details bank balance payment wire instruction approve approved pending received "
    "euro pound dollar chf gbp eur usd interest rate rates inflation bonds equities "
    "growth income pension trust estate property loan mortgage fees fee charge charges "
    "quarter quarterly annual report reports update updated latest last first discuss "
    "discussed plan planning strategy advice adviser manager office desk team colleague "
    "merci bonjour oui danke bitte gracias"
)

SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]
EMOJI = ["👍", "🙏", "❤️", "😂", "👌"]
PUNCTUATION = [".", ".", ".", "?", "!", "…"]


def vocabulary(size: int = VOCABULARY, seed: int = 7) -> list[str]:
    """`size` distinct lowercase words, COMMON first, then made-up words of 2-4 syllables."""
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    for word in COMMON:
        if word not in seen:
            seen.add(word)
            words.append(word)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3, 3, 4))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def client_number(c: int) -> str:
    """Numbers from four countries (UK, France, Germany, US), all distinct."""
    country = c % 4
    if country == 0:
        return f"447700{900000 + c:06d}"
    if country == 1:
        return f"336{12000000 + c * 37:08d}"
    if country == 2:
        return f"49151{20000000 + c * 53:08d}"
    return f"1555{1000000 + c * 7:07d}"


BIG_WA_ID = client_number(BIG_CLIENT)


def client_name(c: int) -> str:
    return f"{FIRST[c % len(FIRST)]} {LAST[(c * 7 + c // len(FIRST)) % len(LAST)]}"


def client_channel(c: int) -> int:
    return 0 if c % 10 < 5 else 1 if c % 10 < 8 else 2


@dataclass
class QueryMaterial:
    """Words and phrases the search benchmark asks for, drawn from what was generated."""

    words: list[str]
    phrases: list[tuple[str, str]] = field(default_factory=list)

    def rank(self, start: int, stop: int, count: int, seed: int) -> list[str]:
        """`count` words whose frequency rank is in [start, stop), numbers left out."""
        rng = random.Random(seed)
        pool = [w for w in self.words[start:stop] if not w.isdigit()]
        return [rng.choice(pool) for _ in range(count)]


@dataclass
class Stats:
    messages: int = 0
    inbound: int = 0
    documents: int = 0
    replies: int = 0
    reactions: int = 0
    statuses: int = 0
    big: int = 0
    words: int = 0
    body_bytes: int = 0
    deliveries: int = 0


class Archive:
    """`messages` visible messages (text and documents) plus the big conversation's reactions."""

    def __init__(self, messages: int, big: int = 5_000, seed: int = 42) -> None:
        self.messages = messages
        self.big = min(big, messages // 2)
        self.rng = random.Random(seed)
        self.words = vocabulary()
        harmonic = [1.0 / (k + 1) ** ZIPF_S for k in range(len(self.words))]
        self.cum_words = list(_accumulate(harmonic))
        weights = [self.rng.lognormvariate(0.0, 0.8) for _ in range(CLIENTS)]
        weights[BIG_CLIENT] = 0.0  # only ever chosen on its own schedule
        self.cum_clients = list(_accumulate(weights))
        self.material = QueryMaterial(self.words)
        self.stats = Stats()
        self.last_wamid: dict[int, str] = {}
        self.big_at = {k * messages // self.big for k in range(self.big)}
        self.phrase_every = max(1, messages // 200)
        self.phrase_ranks = set(self.words[:400])

    # ---------------------------------------------------------------- message parts

    def text(self) -> list[str]:
        n = self.rng.randint(20, 40)
        return self.rng.choices(self.words, cum_weights=self.cum_words, k=n)

    def sentence(self, words: list[str]) -> str:
        out = " ".join(words)
        if len(words) > 12 and self.rng.random() < 0.5:
            cut = self.rng.randrange(4, len(words) - 4)
            out = " ".join(words[:cut]) + ", " + " ".join(words[cut:])
        return out[:1].upper() + out[1:] + self.rng.choice(PUNCTUATION)

    def sample_phrase(self, words: list[str]) -> None:
        """Keep an adjacent pair of not-too-rare words for the phrase queries."""
        ranks = self.phrase_ranks
        pairs = [
            (a, b)
            for a, b in itertools.pairwise(words)
            if a in ranks and b in ranks and a != b and not a.isdigit() and not b.isdigit()
        ]
        if pairs:
            self.material.phrases.append(self.rng.choice(pairs))

    # ---------------------------------------------------------------- one message

    def client_for(self, n: int) -> int:
        if n in self.big_at:
            return BIG_CLIENT
        return self.rng.choices(range(CLIENTS), cum_weights=self.cum_clients)[0]

    def message(self, n: int, client: int) -> list[dict[str, Any]]:
        """The changes for message n: the message itself, then (big conversation only) its
        statuses or a reaction."""
        rng = self.rng
        channel = CHANNELS[client_channel(client)]
        wa_id = client_number(client)
        ts = START + int(n * YEAR / self.messages) + rng.randrange(0, 3)
        wamid = f"wamid.HBgL{wa_id}FQIAERgS{n:010d}QkVOQ0hSRVZJRVcA"
        outbound = rng.random() < 0.45
        words = self.text()
        if n % self.phrase_every == 0:
            self.sample_phrase(words)
        message: dict[str, Any] = {"id": wamid, "timestamp": str(ts)}
        if outbound:
            message |= {"from": channel["display_number"], "to": wa_id}
        else:
            message["from"] = wa_id
        if rng.random() < 0.03:
            name = "-".join(rng.choices(self.words[200:3000], k=rng.randint(1, 3)))
            document: dict[str, Any] = {
                "filename": f"{name}-{2025 + rng.randrange(2)}.pdf",
                "mime_type": "application/pdf",
                "sha256": f"{n:064x}",
                "id": f"{900000000000000 + n}",
            }
            if rng.random() < 0.5:
                document["caption"] = self.sentence(words[:8])
            message |= {"type": "document", "document": document}
            self.stats.documents += 1
        else:
            message |= {"type": "text", "text": {"body": self.sentence(words)}}
        self.stats.words += len(words)
        previous = self.last_wamid.get(client)
        if previous and rng.random() < 0.05:
            message["context"] = {"from": wa_id, "id": previous}
            self.stats.replies += 1
        self.last_wamid[client] = wamid
        self.stats.messages += 1
        self.stats.inbound += not outbound
        self.stats.big += client == BIG_CLIENT
        changes = [self.change(channel, client, message, outbound)]
        if client == BIG_CLIENT and outbound:
            statuses = [
                {
                    "id": wamid,
                    "status": status,
                    "timestamp": str(ts + delay),
                    "recipient_id": wa_id,
                }
                for status, delay in (("sent", 1), ("delivered", 3), ("read", 240))
            ]
            changes.append(self.value_change(channel, "messages", {"statuses": statuses}))
            self.stats.statuses += len(statuses)
        elif client == BIG_CLIENT and rng.random() < 0.03:
            reaction = {
                "from": wa_id,
                "id": wamid + "R",
                "timestamp": str(ts + 30),
                "type": "reaction",
                "reaction": {"message_id": wamid, "emoji": rng.choice(EMOJI)},
            }
            changes.append(self.change(channel, client, reaction, False))
            self.stats.reactions += 1
        return changes

    def value_change(
        self, channel: dict[str, str], field_name: str, value: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "field": field_name,
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {
                    "display_phone_number": channel["display_number"],
                    "phone_number_id": channel["phone_number_id"],
                },
                **value,
            },
        }

    def change(
        self, channel: dict[str, str], client: int, message: dict[str, Any], outbound: bool
    ) -> dict[str, Any]:
        if outbound:
            return self.value_change(channel, "smb_message_echoes", {"message_echoes": [message]})
        contact = {"profile": {"name": client_name(client)}, "wa_id": client_number(client)}
        return self.value_change(
            channel, "messages", {"contacts": [contact], "messages": [message]}
        )

    # ---------------------------------------------------------------- deliveries

    def deliveries(self, per_delivery: int) -> Iterator[tuple[bytes, int]]:
        """(body, received_at as Unix seconds): `per_delivery` messages per body, in order.

        One delivery per WABA, as Meta sends them: a delivery carries the messages of one
        channel, so messages of the three channels go into three bodies filling in parallel.
        """
        pending: dict[int, list[dict[str, Any]]] = {}
        counts: dict[int, int] = {}
        last_ts = START
        for n in range(self.messages):
            client = self.client_for(n)
            c = client_channel(client)
            pending.setdefault(c, []).extend(self.message(n, client))
            counts[c] = counts.get(c, 0) + 1
            last_ts = START + int(n * YEAR / self.messages)
            if counts[c] >= per_delivery:
                yield self.body(c, pending.pop(c)), last_ts + 2
                counts[c] = 0
        for c, changes in sorted(pending.items()):
            yield self.body(c, changes), last_ts + 2

    def body(self, channel: int, changes: list[dict[str, Any]]) -> bytes:
        document = {
            "object": "whatsapp_business_account",
            "entry": [{"id": CHANNELS[channel]["waba_id"], "changes": changes}],
        }
        body = json.dumps(document, ensure_ascii=False).encode()
        self.stats.body_bytes += len(body)
        self.stats.deliveries += 1
        return body


def _accumulate(values: list[float]) -> Iterator[float]:
    total = 0.0
    for value in values:
        total += value
        yield total


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
