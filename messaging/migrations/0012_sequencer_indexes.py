"""Issue 20: the sequencer's per-batch queries flat as the archive grows.

The pending deliveries become a queue (PendingDelivery), filled by a statement-level trigger on
the delivery inbox and emptied by the sequencer as it seals: finding the next batch no longer
anti-joins every delivery with its seal. Deliveries already pending are queued here.
(The "already archived" lookups need no new index: they now name the channel, which lets the
existing (channel, wamid) and (channel, key) unique indexes seek; messaging/sequencer.py.)"""

import django.db.models.deletion
import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models

QUEUE_PENDING = """
INSERT INTO messaging_pendingdelivery (delivery_id)
SELECT d.id FROM messaging_delivery d
WHERE NOT EXISTS (SELECT 1 FROM messaging_deliveryseal s WHERE s.delivery_id = d.id)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0011_message_conversation_seq"),
    ]

    operations = [
        migrations.CreateModel(
            name="PendingDelivery",
            fields=[
                (
                    "delivery",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="messaging.delivery",
                    ),
                ),
            ],
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="delivery",
            trigger=pgtrigger.compiler.Trigger(
                name="queue_pending",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="INSERT INTO messaging_pendingdelivery (delivery_id) SELECT id FROM new_rows; RETURN NULL;",
                    hash="0fdbf33f85f2b76580c494065cb7cbc9623ab279",
                    level="STATEMENT",
                    operation="INSERT",
                    pgid="pgtrigger_queue_pending_a2e47",
                    referencing="REFERENCING NEW TABLE AS new_rows ",
                    table="messaging_delivery",
                    when="AFTER",
                ),
            ),
        ),
        migrations.RunSQL(QUEUE_PENDING, migrations.RunSQL.noop),
    ]
