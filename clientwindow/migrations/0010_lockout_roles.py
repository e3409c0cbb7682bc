"""Re-apply the role table for lockouts: administrators see failed sign-ins and lift a lockout."""

from django.db import migrations

from clientwindow.migrations import apply_roles_for_migration


class Migration(migrations.Migration):
    dependencies = [
        ("clientwindow", "0009_api_tokens"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(apply_roles_for_migration, migrations.RunPython.noop)]
