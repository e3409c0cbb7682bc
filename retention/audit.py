"""Who did what: django-auditlog records changes to policies, holds and requests, and the ledger
entries retention seals name the user who acted."""

from auditlog.registry import auditlog
from django.contrib.auth.models import User


def actor(user: User | None) -> bytes:
    """The committed content naming who acted: a username, or "system" for scheduled work."""
    return (user.get_username() if user else "system").encode()


def register() -> None:
    from retention import models

    auditlog.register(models.RetentionPolicy, m2m_fields={"channels"})
    auditlog.register(models.LegalHold)
    auditlog.register(models.Disposition)
    auditlog.register(models.ErasureRequest)
