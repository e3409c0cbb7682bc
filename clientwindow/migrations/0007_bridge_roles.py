"""Re-apply the role table for the bridge's permissions (routes, templates, reconciliation)."""

from django.db import migrations

from clientwindow.migrations import apply_roles_for_migration


class Migration(migrations.Migration):
    dependencies = [
        ("clientwindow", "0006_retention_roles"),
        ("bridge", "0001_initial"),
    ]

    operations = [migrations.RunPython(apply_roles_for_migration, migrations.RunPython.noop)]
