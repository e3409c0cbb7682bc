"""Issue 20: the ledger's guards per statement rather than per row.

Placeholder created at the start of issue 20's work so that parallel changes get stable names;
its owner fills in the operations (an empty migration changes nothing)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0005_anchoring"),
    ]

    operations: list[migrations.operations.base.Operation] = []
