"""Create the four roles as groups and give each its permissions (clientwindow/roles.py)."""

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

from clientwindow.roles import ROLE_PERMISSIONS


def apply_roles(apps: Any, schema_editor: Any) -> None:
    # Permissions are normally created after migrate; create them now so groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.using(schema_editor.connection.alias).get_or_create(
            name=role
        )
        permissions = []
        for name in names:
            app_label, codename = name.split(".")
            permissions.append(
                permission_model.objects.using(schema_editor.connection.alias).get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        group.permissions.set(permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("archive", "0002_chain_rules"),
    ]

    operations = [migrations.RunPython(apply_roles, migrations.RunPython.noop)]
