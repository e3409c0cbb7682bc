"""Reply emails from email providers' inbound webhooks (django-anymail: Mailgun, Postmark,
SendGrid, Amazon SES, Brevo, Mandrill, Postal, Resend, SparkPost…). anymail checks the
provider's signature or the basic-auth secret (ANYMAIL_WEBHOOK_SECRET); the message is then
kept exactly like one from the SMTP gateway."""

from typing import Any

from bridge import inbound
from bridge.models import InboundEmail


def received(sender: Any, event: Any, esp_name: str, **kwargs: Any) -> None:
    message = event.message
    if message is None:
        return
    recipient = str(message.envelope_recipient or "")
    inbound.receive(
        message.as_bytes(),
        InboundEmail.Via.WEBHOOK,
        envelope_from=str(message.envelope_sender or ""),
        envelope_to=[recipient] if recipient else [],
    )
