"""Re-apply the role table for re-sealing unparsed items (administrators)."""

from django.db import migrations

from clientwindow.migrations import apply_roles_for_migration


class Migration(migrations.Migration):
    dependencies = [
        ("clientwindow", "0007_bridge_roles"),
        ("messaging", "0008_unparsed_bytes_and_reseal"),
    ]

    operations = [migrations.RunPython(apply_roles_for_migration, migrations.RunPython.noop)]
