"""API tokens hashed at rest (clientwindow/models.py), and DRF's plaintext tokens moved into them.

Each existing rest_framework.authtoken key becomes an ApiToken named "migrated" that expires 30
days from this migration, so current clients keep working meanwhile; the plaintext keys are then
deleted. A superuser's key is deleted without a replacement (superusers hold no API tokens).
Reversing drops the table: the old keys cannot come back.
"""

import hashlib
from datetime import timedelta
from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


def hash_drf_tokens(apps: Any, schema_editor: Any) -> None:
    alias = schema_editor.connection.alias
    old_tokens = apps.get_model("authtoken", "Token").objects.using(alias)
    api_token = apps.get_model("clientwindow", "ApiToken")
    expires_at = timezone.now() + timedelta(days=30)
    migrated = [
        api_token(
            owner_id=old.user_id,
            name="migrated",
            prefix=old.key[:8],
            hash=hashlib.sha256(old.key.encode()).hexdigest(),
            expires_at=expires_at,
        )
        for old in old_tokens.filter(user__is_superuser=False)
    ]
    api_token.objects.using(alias).bulk_create(migrated)
    old_tokens.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("clientwindow", "0008_reseal_roles"),
        ("authtoken", "__latest__"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                ("prefix", models.CharField(db_index=True, max_length=8)),
                ("hash", models.CharField(max_length=64, unique=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("expires_at", models.DateTimeField()),
                ("last_used_at", models.DateTimeField(blank=True, null=True)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_tokens",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "revoked_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "API token",
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.RunPython(hash_drf_tokens, migrations.RunPython.noop),
    ]
