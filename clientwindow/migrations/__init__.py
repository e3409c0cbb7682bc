"""Migrations of the clientwindow app; `apply_roles_for_migration` (re)applies the role table of
access/roles.py and is run again by each migration that adds permissions to it."""

from typing import Any

from django.contrib.auth.management import create_permissions

from access.roles import ROLE_PERMISSIONS


def apply_roles_for_migration(apps: Any, schema_editor: Any) -> None:
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
            permission = (
                permission_model.objects.using(schema_editor.connection.alias)
                .filter(content_type__app_label=app_label, codename=codename)
                .first()
            )
            # A model migrated later gets its permissions from a later migration re-running this.
            if permission is not None:
                permissions.append(permission)
        group.permissions.set(permissions)
