"""Which changes django-auditlog records here: policies, holds and requests (who, when, what)."""

from auditlog.registry import auditlog


def register() -> None:
    from retention import models

    auditlog.register(models.RetentionPolicy, m2m_fields={"channels"})
    auditlog.register(models.LegalHold)
    auditlog.register(models.Disposition)
    auditlog.register(models.ErasureRequest)
