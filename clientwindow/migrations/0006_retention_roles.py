"""Re-apply the role table for the retention app's permissions (holds, dispositions, GDPR)."""

from django.db import migrations

from clientwindow.migrations import apply_roles_for_migration


class Migration(migrations.Migration):
    dependencies = [
        ("clientwindow", "0005_export_roles"),
        ("retention", "0002_rules"),
    ]

    operations = [migrations.RunPython(apply_roles_for_migration, migrations.RunPython.noop)]
