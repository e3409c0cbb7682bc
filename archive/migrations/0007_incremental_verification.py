"""Issue 20: what verify_archive needs to check only what is new.

Placeholder created at the start of issue 20's work so that parallel changes get stable names;
its owner fills in the operations (an empty migration changes nothing)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0006_statement_triggers"),
    ]

    operations: list[migrations.operations.base.Operation] = []
