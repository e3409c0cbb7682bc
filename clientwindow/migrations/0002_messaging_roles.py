"""Re-apply the role table now that the messaging models (and their permissions) exist."""

from django.db import migrations

from clientwindow.migrations import apply_roles_for_migration


class Migration(migrations.Migration):
    dependencies = [("clientwindow", "0001_roles"), ("messaging", "0001_initial")]

    operations = [migrations.RunPython(apply_roles_for_migration, migrations.RunPython.noop)]
