"""Re-apply the role table for the exports app's permissions and API tokens."""

from django.db import migrations

from clientwindow.migrations import apply_roles_for_migration


class Migration(migrations.Migration):
    dependencies = [
        ("clientwindow", "0004_review_roles"),
        ("exports", "0001_initial"),
        ("authtoken", "__latest__"),
    ]

    operations = [migrations.RunPython(apply_roles_for_migration, migrations.RunPython.noop)]
