"""Create the four roles as groups and give each its permissions (access/roles.py)."""

from django.db import migrations

from clientwindow.migrations import apply_roles_for_migration


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("archive", "0002_chain_rules"),
    ]

    operations = [migrations.RunPython(apply_roles_for_migration, migrations.RunPython.noop)]
