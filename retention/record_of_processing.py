"""The record of processing activities (GDPR Art. 30(1)), generated from the configuration.

`build()` returns plain data: the controller, purposes, categories of data subjects and data,
each channel with the policy that governs it, recipients, transfers, time limits for erasure and
security measures, all read from the settings and the database as they are now, so the record
never drifts from what the archive does. The portal page and the PDF render the same data; the
PDF is a few pages, so `pdf()` lays it out in-process.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from access.roles import ROLE_PERMISSIONS
from messaging.models import Channel

from .assign import Policies
from .models import LegalHold, RetentionPolicy
from .policies import period_text

# What the apps that send data out add to the record, each registered in its AppConfig.ready()
# (bridge/record_of_processing.py): lines for "where the archive sends data on its own", and
# for transfers to processors.
ROUTES: list[Callable[[], list[str]]] = []
TRANSFERS: list[Callable[[], list[str]]] = []

SUBJECTS = [
    "Clients and prospective clients who message the firm's WhatsApp Business numbers",
    "Other people in those conversations (group members, contacts shared in messages)",
    "Staff who write from the firm's numbers, and staff who use this archive",
]
DATA = [
    "WhatsApp numbers and profile names",
    "Message content: text, captions, replies, reactions, edits and deletions",
    "Media: images, documents, audio and video sent or received, with their SHA-256",
    "Delivery metadata: times, delivery and read statuses, the webhook bodies as received",
    "Staff's review work (tags, flags, notes, decisions) and their access to the archive "
    "(the access log)",
]


@dataclass
class ChannelLine:
    name: str
    number: str
    phone_number_id: str
    waba_id: str
    active: bool
    policy: str
    period: str
    rule: str


@dataclass
class PolicyLine:
    name: str
    period: str
    rule: str
    channels: list[str]
    is_default: bool


@dataclass
class Record:
    controller: str
    time_zone: str
    purposes: list[str]
    rules: list[str]
    subjects: list[str]
    data: list[str]
    channels: list[ChannelLine]
    recipients: list[str]
    routes: list[str]
    transfers: list[str]
    time_limits: list[PolicyLine]
    erasure: list[str]
    security: list[str]
    active_holds: int
    generated_at: datetime = field(default_factory=timezone.now)


def build() -> Record:
    policies = list(RetentionPolicy.objects.prefetch_related("channels"))
    return Record(
        controller=getattr(settings, "FIRM_NAME", "") or "the firm",
        time_zone=settings.TIME_ZONE,
        purposes=[
            "Regulatory record-keeping of client communications, under the rules the retention "
            "policies name (below)",
            "Supervision: review of communications by lexicon and sampling policies, flags and "
            "decisions",
            "Litigation and investigation holds: keeping what a legal matter concerns until the "
            "hold is released",
            "Answering data subjects' requests: access (Art. 15) and erasure (Art. 17)",
        ],
        rules=sorted({p.rule for p in policies}),
        subjects=SUBJECTS,
        data=DATA,
        channels=_channels(policies),
        recipients=_recipients(),
        routes=_routes(),
        transfers=_transfers() + [line for describe in TRANSFERS for line in describe()],
        time_limits=[
            PolicyLine(
                p.name,
                period_text(p.days),
                p.rule,
                [c.name for c in p.channels.all()],
                p.is_default,
            )
            for p in policies
        ],
        erasure=[
            "Records are kept for their policy's period from the day they were sealed, then "
            "disposed of by the daily disposition: content, media and raw bodies are deleted and "
            "the disposition is sealed in the ledger.",
            "Erasure requests are recorded; what is past retention and not held is erased at "
            "once, the rest is refused with the ground recorded (Art. 17(3)(b) while a retention "
            "duty applies, Art. 17(3)(e) while a legal hold applies) and erased when it ends.",
        ],
        security=_security(),
        active_holds=LegalHold.objects.filter(released_at__isnull=True).count(),
    )


def _channels(policies: list[RetentionPolicy]) -> list[ChannelLine]:
    by_id = {p.pk: p for p in policies}
    governing = Policies.load()  # the rule sealing applies: longest naming policy, or default
    lines = []
    for channel in Channel.objects.order_by("name"):
        policy = by_id[governing.for_channel(channel.pk).id]
        lines.append(
            ChannelLine(
                channel.name,
                channel.display_number,
                channel.phone_number_id,
                channel.waba_id,
                channel.active,
                policy.name,
                period_text(policy.days),
                policy.rule,
            )
        )
    return lines


def _recipients() -> list[str]:
    exporters = [
        role for role, names in ROLE_PERMISSIONS.items() if "exports.create_export" in names
    ]
    return [
        "Users of the archive, by role: " + ", ".join(ROLE_PERMISSIONS) + "; each sees only "
        "what the role allows.",
        "Regulators, courts, counsel and data subjects, through evidence exports made by users "
        "with the roles " + ", ".join(exporters) + "; every export is recorded in the access "
        "log and sealed in the ledger.",
    ]


def _routes() -> list[str]:
    """Where the archive sends data on its own (journals, bridges, mail relays); empty if none."""
    return [line for describe in ROUTES for line in describe()]


def _transfers() -> list[str]:
    graph = urlsplit(settings.WHATSAPP_GRAPH_URL).hostname or settings.WHATSAPP_GRAPH_URL
    return [
        f"Meta Platforms, as processor operating the WhatsApp Business Cloud API ({graph}): "
        "messages and webhooks pass through it before capture, and media is downloaded from "
        f"its hosts ({', '.join(settings.WHATSAPP_MEDIA_HOSTS)}). Safeguards: the firm's "
        "WhatsApp Business terms and data processing terms with Meta."
    ]


def _security() -> list[str]:
    hsts = getattr(settings, "SECURE_HSTS_SECONDS", 0)
    tls = (
        f"HTTPS: redirect {'on' if getattr(settings, 'SECURE_SSL_REDIRECT', False) else 'off'}, "
        + (
            f"HSTS for {hsts:,} seconds"
            + (
                " including subdomains"
                if getattr(settings, "SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
                else ""
            )
            if hsts
            else "HSTS off"
        )
        + f", secure cookies {'on' if settings.SESSION_COOKIE_SECURE else 'off'}; sessions end "
        f"after {settings.SESSION_COOKIE_AGE // 3600} hours; a strict Content-Security-Policy."
    )
    return [
        "An append-only ledger: PostgreSQL privileges let the application only insert captured "
        "records and ledger entries, never change or delete them; triggers refuse it too.",
        "Every entry is linked in a hash chain, and Merkle checkpoints are signed with an "
        f"Ed25519 key every {settings.LEDGER_CHECKPOINT_MINUTES} minutes ({settings.LEDGER_ORIGIN}"
        "); the whole archive is verified daily and on demand.",
        "Role-based access (" + ", ".join(ROLE_PERMISSIONS) + "), with an access log of every "
        "conversation viewed, search run, export requested and file downloaded.",
        "Secrets (the Django secret key, the WhatsApp app secret, database passwords, the "
        "signing key file) come from the environment, never from the code or the database.",
        tls,
        "Disposition only through a database function that refuses any record inside retention "
        "or under an active legal hold; a disposition of more than "
        f"{settings.DISPOSITION_APPROVAL_THRESHOLD:,} records waits for a second administrator.",
    ]


def pdf(html: str) -> bytes:
    """The rendered record as PDF. WeasyPrint is imported here: it takes seconds to load, and
    only this download needs it. The document is self-contained, so nothing is ever fetched."""
    import weasyprint
    from weasyprint.urls import URLFetcher

    class NoFetch(URLFetcher):  # type: ignore[misc]  # WeasyPrint is untyped
        def fetch(self, url: str, headers: object = None) -> object:
            raise ValueError(f"refused to fetch {url[:80]!r}")

    return weasyprint.HTML(string=html, url_fetcher=NoFetch()).write_pdf()  # type: ignore[no-any-return]
