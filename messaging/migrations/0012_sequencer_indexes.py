"""Issue 20: indexes that keep the sequencer's per-batch queries flat as the archive grows.

Placeholder created at the start of issue 20's work so that parallel changes get stable names;
its owner fills in the operations (an empty migration changes nothing)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0011_message_conversation_seq"),
    ]

    operations: list[migrations.operations.base.Operation] = []
