"""Issue 20: search, transcript and conversation-list indexes for a 10M-message archive.

Placeholder created at the start of issue 20's work so that parallel changes get stable names;
its owner fills in the operations (an empty migration changes nothing)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0012_sequencer_indexes"),
    ]

    operations: list[migrations.operations.base.Operation] = []
