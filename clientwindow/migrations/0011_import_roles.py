"""Re-apply the role table for imports of phone chat exports: Legal and Administrators import
(`imports.import_chat`), Administrators see everyone's import jobs."""

from django.db import migrations

from clientwindow.migrations import apply_roles_for_migration


class Migration(migrations.Migration):
    dependencies = [
        ("clientwindow", "0010_lockout_roles"),
        ("imports", "0001_initial"),
    ]

    operations = [migrations.RunPython(apply_roles_for_migration, migrations.RunPython.noop)]
