"""Records sealed before retention existed get the default policy (7 years from sealing), and
what they depend on is kept as long as they are. A fresh database has none."""

from typing import Any

from django.db import migrations


def backfill(apps: Any, schema_editor: Any) -> None:
    from retention.assign import backfill as run

    with schema_editor.connection.cursor() as cursor:
        run(cursor)


class Migration(migrations.Migration):
    dependencies = [("retention", "0002_rules")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
