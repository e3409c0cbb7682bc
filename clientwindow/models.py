"""API tokens (clientwindow/tokens.py issues and checks them): hashed at rest, named, expiring,
revocable. A token acts as its owner, with the owner's permissions and no more.

The secret is shown once, when the token is issued; the database keeps its first characters
(to tell tokens apart) and its SHA-256 digest. A 32-byte random secret needs no salt or slow
hash: there is nothing to guess from the digest.
"""

from auditlog.registry import auditlog
from django.conf import settings
from django.db import models
from django.utils import timezone

PREFIX_LENGTH = 8


class ApiToken(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, db_index=True)
    hash = models.CharField(max_length=64, unique=True)  # hex SHA-256 of the whole secret
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… {self.name}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


# Who issued, renamed or revoked a token, and when; never its digest.
auditlog.register(ApiToken, exclude_fields=["hash"])
