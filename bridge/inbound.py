"""Staff reply emails: stored as received, then checked, sealed and sent to the client.

`receive()` is the one way in, for the SMTP gateway, provider webhooks (django-anymail) and IMAP
polling alike: the raw bytes are committed before the sender's server hears "accepted", then the
`bridge.tasks.process_replies` task is woken.

`process()` decides, in this order, and seals the email with its outcome either way:
- auto-replies, bounces and our own notices are ignored (never answered: no mail loops);
- the reply address must carry a valid signature (bridge/tokens.py) for an existing conversation;
- the sender (From) must be a recipient, user or allowed sender of the conversation's route;
- the reply text is separated from quoted history and signatures (mail-parser-reply), the files
  attached are kept, and a first line "/template NAME [| parameter | …]" sends an approved
  template instead of free text;
- bridge/outbound.py refuses what WhatsApp would (the 24-hour window, sizes).
Whatever is refused gets a notice back to the sender saying why, and nothing is sent.
"""

import email
import email.policy
import html
import logging
import re
from email.message import EmailMessage as ParsedEmail
from email.utils import getaddresses, parseaddr

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from mailparser_reply import EmailReplyParser

from archive import ledger
from archive.envelope import Fact, rfc3339
from messaging.inbox import queue
from messaging.models import Conversation
from retention import assign as retention

from . import mail, outbound
from .dispatch import email_recipients
from .models import InboundEmail, MessageTemplate, Outbound, Route
from .tokens import addressed_conversation

logger = logging.getLogger(__name__)
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv"]
TEMPLATE_LINE = re.compile(r"^\s*/template\s+([^\s|]+)(?:\s+([a-zA-Z_]{2,8}))?\s*(?:\|(.*))?$")
AUTO_PRECEDENCE = ("bulk", "junk", "list", "auto_reply")


class Refused(Exception):
    """The reply is not sent; the sender is told this."""


def wake() -> None:
    queue("bridge.tasks.process_replies", "bridge-replies")


def receive(
    raw: bytes, via: str, envelope_from: str = "", envelope_to: list[str] | None = None
) -> InboundEmail:
    """Keep a received email (committed when this returns) and queue its processing."""
    try:
        message_id = str(parse(raw).get("Message-ID", "")).strip()[:998]
    except Exception:  # kept whatever it is; processing says what is wrong with it
        message_id = ""
    with transaction.atomic():
        stored = InboundEmail.objects.create(
            via=via,
            raw=raw,
            message_id=message_id,
            envelope_from=envelope_from[:320],
            envelope_to=[t[:320] for t in envelope_to or []],
        )
        transaction.on_commit(wake)
    return stored


def process_pending(limit: int = 50) -> int:
    """Process stored emails not yet processed; return how many were."""
    done = 0
    while done < limit:
        with transaction.atomic():
            stored = (
                InboundEmail.objects.select_for_update(skip_locked=True)
                .filter(state=InboundEmail.State.PENDING)
                .order_by("id")
                .first()
            )
            if stored is None:
                return done
            # claimed before anything is sent: a crash leaves it "processing", never resent
            stored.state = InboundEmail.State.PROCESSING
            stored.save(update_fields=["state"])
        try:
            process(stored)
        except Exception as exc:  # one email never stops the others; it stays listed
            logger.exception("reply email %s could not be processed", stored.pk)
            InboundEmail.objects.filter(pk=stored.pk).update(
                reason=f"processing failed ({type(exc).__name__}); nothing more was sent"
            )
        done += 1
    return done


def parse(raw: bytes) -> ParsedEmail:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, ParsedEmail)
    return parsed


def is_automatic(parsed: ParsedEmail, envelope_from: str | None = None) -> bool:
    """RFC 3834 Auto-Submitted, Precedence, delivery reports, bounces (a null sender, or from
    a mailer daemon): never answered."""
    if envelope_from is not None and envelope_from.strip() == "<>":  # the gateway's null sender
        return True
    if str(parsed.get("Return-Path", "")).strip() == "<>":
        return True
    local = sender_address(parsed).partition("@")[0]
    if local in ("mailer-daemon", "postmaster"):
        return True
    auto = str(parsed.get("Auto-Submitted", "no")).strip().lower()
    if auto and auto != "no":
        return True
    if str(parsed.get("Precedence", "")).strip().lower() in AUTO_PRECEDENCE:
        return True
    if parsed.get("X-Autoreply") or parsed.get("X-Autorespond"):
        return True
    return parsed.get_content_type() == "multipart/report"


def sender_address(parsed: ParsedEmail) -> str:
    return parseaddr(str(parsed.get("From", "")))[1].strip().lower()


def header_recipients(parsed: ParsedEmail) -> list[str]:
    values: list[str] = []
    for name in ("Delivered-To", "X-Original-To", "To", "Cc"):
        values.extend(str(v) for v in parsed.get_all(name, []))
    return [address for _, address in getaddresses(values) if address]


def reply_text(parsed: ParsedEmail) -> str:
    """What the staff member wrote, without the quoted history or their signature."""
    part = parsed.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):
        content = part.get_payload(decode=True).decode("utf-8", "replace")  # type: ignore[union-attr]
    if part.get_content_type() == "text/html":
        content = html_to_text(content)
    content = content.replace("\r\n", "\n")
    replies = EmailReplyParser(languages=REPLY_LANGUAGES).read(text=content).replies
    if not replies:
        return str(content).strip()
    if replies[0].headers:  # the email starts with the quote: nothing new was written
        return ""
    new = str(replies[0].body)
    # a quote the parser did not recognise as one is still not the staff member's words
    return "\n".join(line for line in new.splitlines() if not line.startswith(">")).strip()


def html_to_text(markup: str) -> str:
    """An HTML-only reply as text: quoted blocks dropped, breaks kept, tags and entities gone."""
    markup = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", "", markup)
    markup = re.sub(r"(?is)<blockquote\b.*?</blockquote\s*>", "", markup)
    markup = re.sub(
        r"(?is)<div[^>]*(gmail_quote|divRplyFwdMsg|OutlookMessageHeader)[^>]*>.*", "", markup
    )
    markup = re.sub(r"(?i)<br\s*/?>", "\n", markup)
    markup = re.sub(r"(?i)</(p|div|li|tr|h\d)\s*>", "\n", markup)
    text = html.unescape(re.sub(r"(?s)<[^>]+>", "", markup))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def attachments(parsed: ParsedEmail) -> list[outbound.File]:
    """Files the staff member attached, wherever their mail program put them (Apple Mail nests
    them inside the alternative part); the body itself, and inline images the HTML refers to
    (signature logos), are not files."""
    bodies = {id(p) for p in (parsed.get_body(("plain",)), parsed.get_body(("html",))) if p}
    referenced: set[str] = set()
    for part in parsed.walk():
        if part.get_content_type() == "text/html" and not part.get_filename():
            try:
                html_text = part.get_content()
            except (LookupError, UnicodeError):
                continue
            referenced |= {m.lower() for m in re.findall(r"cid:([^\"'\s>]+)", html_text)}
    files = []
    for part in parsed.walk():
        if part.is_multipart() or id(part) in bodies:
            continue
        if part.get_content_type() == "message/rfc822":
            continue
        filename = part.get_filename()
        disposition = part.get_content_disposition()
        if part.get_content_maintype() == "text" and not filename and disposition != "attachment":
            continue  # another rendering of the body
        content_id = str(part.get("Content-ID", "")).strip("<> ").lower()
        if content_id and content_id in referenced:
            continue
        content = part.get_payload(decode=True)
        if not isinstance(content, bytes) or not content:
            continue
        name = filename or f"attachment.{part.get_content_subtype()}"
        files.append(outbound.File(content, part.get_content_type(), name[:200]))
    return files


def authenticated(parsed: ParsedEmail, sender: str) -> bool:
    """With BRIDGE_TRUSTED_AUTHSERV_ID set, the firm's own mail server must have stamped the
    email `dmarc=pass` for the sender's domain (RFC 8601 Authentication-Results); headers from
    anyone else are ignored. Unset: the From address is trusted (docs/BRIDGE.md)."""
    trusted = settings.BRIDGE_TRUSTED_AUTHSERV_ID.strip().lower()
    if not trusted:
        return True
    domain = sender.rpartition("@")[2].lower()
    for header in parsed.get_all("Authentication-Results", []):
        authserv, _, results = str(header).partition(";")
        words = authserv.split()
        if not words or words[0].lower() != trusted:
            continue  # anyone can write this header: only our own server's counts
        for result in results.lower().split(";"):
            result = result.strip()
            if result.startswith("dmarc=pass") and f"header.from={domain}" in result.split():
                return True
    return False


def allowed_sender(route: Route | None, address: str) -> tuple[bool, object | None]:
    """Whether `address` may reply on this route, and the portal user it belongs to."""
    if route is None or not route.active or not address:
        return False, None
    users = [u for u in route.users.all() if u.is_active and u.email.lower() == address]
    allowed = {a.lower() for a in email_recipients(route)} | {
        a.lower() for a in route.reply_senders
    }
    if users:
        return True, users[0]
    if address in allowed:
        user = get_user_model().objects.filter(email__iexact=address, is_active=True).first()
        return True, user
    return False, None


def route_of(conversation: Conversation) -> Route | None:
    return (
        Route.objects.filter(conversation=conversation, active=True).first()
        or Route.objects.filter(
            channel_id=conversation.channel_id, conversation__isnull=True, active=True
        ).first()
    )


def parts_of(
    conversation: Conversation, text: str, files: list[outbound.File]
) -> list[outbound.Part]:
    first = text.partition("\n")[0]
    command = TEMPLATE_LINE.match(first)
    if command:
        name, language, params = command[1], command[2], command[3]
        templates = MessageTemplate.objects.filter(
            channel_id=conversation.channel_id, name=name, active=True
        )
        if language:
            templates = templates.filter(language__iexact=language)
        template = templates.order_by("language").first()
        if template is None:
            raise Refused(f"There is no approved template named {name!r} for this number.")
        values = tuple(p.strip() for p in params.split("|")) if params else ()
        if text.partition("\n")[2].strip() or files:
            raise Refused(
                "A template is sent on its own: remove the other text and the attachments, or "
                "send them once the client has written again."
            )
        return [outbound.Template(template, values)]
    parts: list[outbound.Part] = [outbound.Text(text)] if text else []
    return parts + list(files)


def process(stored: InboundEmail) -> None:
    """Decide about a stored reply email, in the order the module docstring gives; seal it with
    the decision either way, send what passes, and tell the sender what did not go."""
    parsed = parse(bytes(stored.raw))
    stored.sender = sender_address(parsed)[:320]
    stored.message_id = str(parsed.get("Message-ID", ""))[:998]
    conversation: Conversation | None = None
    user = None
    try:
        ignored = _ignored(stored, parsed)
        if ignored:
            _seal(stored, None, InboundEmail.State.IGNORED, ignored)
            return
        conversation = _addressed(stored, parsed)
        user = _staff_member(stored, parsed, conversation)
        parts = parts_of(conversation, reply_text(parsed), attachments(parsed))
        outbound.check(conversation, parts)
    except (Refused, outbound.CannotSend) as refusal:
        _seal(stored, conversation, InboundEmail.State.REFUSED, str(refusal), user=user)
        # who is not known to be staff is told why, but not shown what they wrote (backscatter)
        _tell(stored, parsed, "Your WhatsApp reply was not sent", str(refusal), quote=bool(user))
        return
    _seal(stored, conversation, InboundEmail.State.PROCESSING, "", user=user)
    _send(stored, parsed, conversation, parts, user)


def _ignored(stored: InboundEmail, parsed: ParsedEmail) -> str:
    """Why the email is not a reply to read (an automatic email, a copy of one already
    received), or "" when it is; Refused when it is larger than a reply may be."""
    envelope = stored.envelope_from if stored.via == InboundEmail.Via.SMTP else None
    if is_automatic(parsed, envelope):
        return "an automatic email (auto-reply or report)"
    if len(stored.raw) > settings.MAIL_MAX_BYTES:
        raise Refused(
            f"The email is larger than the {settings.MAIL_MAX_BYTES:,} bytes a reply may be."
        )
    first = _earlier_copy(stored)
    return f"a copy of reply email {first}" if first is not None else ""


def _addressed(stored: InboundEmail, parsed: ParsedEmail) -> Conversation:
    """The conversation the reply address names, or Refused."""
    conversation_id, looked_like = addressed_conversation(
        [*stored.envelope_to, *header_recipients(parsed)]
    )
    conversation = (
        Conversation.objects.select_related("channel", "participant", "entry")
        .filter(pk=conversation_id)
        .first()
        if conversation_id is not None
        else None
    )
    if conversation is None:
        raise Refused(
            "The reply address is not valid (it may have been altered or copied from "
            "another email). Reply to the notification email itself."
            if looked_like
            else "This address only takes replies to ClientWindow notifications."
        )
    return conversation


def _staff_member(stored: InboundEmail, parsed: ParsedEmail, conversation: Conversation) -> object:
    """The portal user the sender is (None for an allowed address without an account), or
    Refused when the sender may not reply here or is not shown to be who they say."""
    ok, user = allowed_sender(route_of(conversation), stored.sender)
    if not ok:
        raise Refused(
            f"{stored.sender or 'This sender'} may not reply to this client. Ask an "
            "administrator to add you to the route."
        )
    if not authenticated(parsed, stored.sender):
        raise Refused(
            "Your email could not be shown to come from your address (no passing DMARC "
            f"result from {settings.BRIDGE_TRUSTED_AUTHSERV_ID}), so it was not sent."
        )
    return user


def _send(
    stored: InboundEmail,
    parsed: ParsedEmail,
    conversation: Conversation,
    parts: list[outbound.Part],
    user: object | None,
) -> None:
    """Send the accepted reply, record how far it went, and tell the sender if not all of it."""
    author = outbound.Author(Outbound.Source.EMAIL, user, stored.sender, stored)
    try:
        sent = outbound.send(conversation, parts, author)
    except outbound.CannotSend as refusal:
        _finish(stored, InboundEmail.State.REFUSED, str(refusal))
        _tell(stored, parsed, "Your WhatsApp reply was not sent", str(refusal))
        return
    failed = [o for o in sent if o.state != Outbound.State.SENT]
    if not failed:
        _finish(stored, InboundEmail.State.SENT, "")
        return
    state, detail = _shortfall(len(sent) - len(failed), len(parts), failed[0])
    _finish(stored, state, detail)
    _tell(stored, parsed, "Your WhatsApp reply was not (fully) sent", detail)


def _shortfall(went: int, parts: int, problem: Outbound) -> tuple[str, str]:
    """The state of a reply of which `went` parts were sent before `problem`, and what its
    sender is told."""
    if problem.state == Outbound.State.UNKNOWN:
        return InboundEmail.State.UNCONFIRMED, (
            f"{went} of {parts} part(s) of your reply went to the client. WhatsApp did not "
            "confirm whether the next one reached them, and it was not sent again; the rest "
            "was not sent. Check the conversation in ClientWindow before resending."
        )
    return InboundEmail.State.PARTIAL if went else InboundEmail.State.REFUSED, (
        f"{went} of {parts} part(s) of your reply went to the client; the rest did "
        f"not. WhatsApp refused it: {problem.error}"
    )


@transaction.atomic
def _seal(
    stored: InboundEmail,
    conversation: Conversation | None,
    state: str,
    reason: str,
    *,
    user: object | None = None,
) -> None:
    """Seal the email as received, with the decision about it."""
    channel = conversation.channel if conversation else None
    (entry,) = ledger.append([_fact(stored, conversation, state, reason, user)])
    retention.bridged(
        entry,
        "email.inbound",
        channel.pk if channel else None,
        conversation.pk if conversation else None,
    )
    stored.entry = entry
    stored.conversation = conversation
    stored.user = user  # type: ignore[assignment]
    stored.state = state
    stored.reason = reason
    stored.processed_at = timezone.now()
    stored.save(
        update_fields=[
            "entry",
            "conversation",
            "user",
            "state",
            "reason",
            "processed_at",
            "sender",
            "message_id",
        ]
    )


def _fact(
    stored: InboundEmail,
    conversation: Conversation | None,
    state: str,
    reason: str,
    user: object | None,
) -> Fact:
    """`email.inbound`: the raw email with who sent it, where it was for, and the decision."""
    channel = conversation.channel if conversation else None
    return Fact(
        "email.inbound",
        {
            "via": str(stored.via),
            "received_at": rfc3339(stored.received_at),
            "phone_number_id": channel.phone_number_id if channel else None,
            "conversation_seq": conversation.entry_id if conversation else None,
            "accepted": state == InboundEmail.State.PROCESSING,
            "user": getattr(user, "pk", None),
        },
        {
            "raw": bytes(stored.raw),
            "sender": stored.sender.encode(),
            "message_id": stored.message_id.encode(),
            "decision": reason.encode(),
        },
    )


def _earlier_copy(stored: InboundEmail) -> int | None:
    """The same email received before (a relay retrying, IMAP after a crash): never resent."""
    if not stored.message_id:
        return None
    earlier = (  # the first copy wins, whatever became of it (two workers may hold both)
        InboundEmail.objects.filter(message_id=stored.message_id, pk__lt=stored.pk)
        .order_by("pk")
        .values_list("pk", "raw")
        .first()
    )
    if earlier is None or bytes(earlier[1]).strip() != bytes(stored.raw).strip():
        return None
    return int(earlier[0])


def _finish(stored: InboundEmail, state: str, reason: str) -> None:
    stored.state = state
    stored.reason = reason
    stored.save(update_fields=["state", "reason"])


def _tell(
    stored: InboundEmail, parsed: ParsedEmail, subject: str, text: str, *, quote: bool = True
) -> None:
    """A notice to the sender (never to an automatic email: see is_automatic)."""
    if not stored.sender:
        return
    about = f"Your email: {parsed.get('Subject', '(no subject)')}\n" if quote else ""
    body = (
        f"{text}\n\n{about}"
        f"Received: {stored.received_at:%Y-%m-%d %H:%M} UTC\n\n"
        "The email is kept in the archive with this decision."
    )
    notice = mail.notice(stored.sender, subject, body, in_reply_to=stored.message_id)
    try:
        with mail.connection() as connection:
            connection.send_messages([notice])
    except Exception:
        logger.warning("could not send a notice for reply email %s", stored.pk, exc_info=True)
