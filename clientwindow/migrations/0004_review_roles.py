"""Re-apply the role table for the review app's permissions."""

from django.db import migrations

from clientwindow.migrations import apply_roles_for_migration


class Migration(migrations.Migration):
    dependencies = [
        ("clientwindow", "0003_media_roles"),
        ("review", "0001_initial"),
        ("auditlog", "__latest__"),
    ]

    operations = [migrations.RunPython(apply_roles_for_migration, migrations.RunPython.noop)]
