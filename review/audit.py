"""Which changes django-auditlog records: tags, policies, flags and users (who, when, what)."""

from auditlog.registry import auditlog
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group


def register() -> None:
    from review import models

    for model in (
        models.Tag,
        models.ConversationTag,
        models.MessageTag,
        models.LexiconTerm,
        models.Flag,
        models.SavedSearch,
        Group,
    ):
        auditlog.register(model)
    auditlog.register(get_user_model(), exclude_fields=["password", "last_login"])
    auditlog.register(models.LexiconPolicy, m2m_fields={"channels"})
    auditlog.register(models.SamplingPolicy, m2m_fields={"channels"})
