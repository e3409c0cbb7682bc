"""One channel's messages in time order, as search writes its channel (docs/SCALE.md §7e).

Search checks its channel as `channel_id + 0` on the rows its other conditions find, so that a
rare word's few GIN rows are not ANDed with a bitmap of the whole channel (§7d). A common word
in a channel is then read newest first on `message_sent`, through every newer message of the
other channels: at 10M, with a burst of 109,212 messages on one channel as the newest, a common
word in another channel removed 110,520 rows (100 ms) before its page. This index serves the
same expression with the time, so the newest messages of one channel are read directly: the
page of "sogo OR zouvoususa" in channel 2 in 2.2 ms. 391 MB at 10M (39 B a message); built
CONCURRENTLY, so sealing never waits for it.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models
from django.db.models import ExpressionWrapper, F


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("messaging", "0021_search_statistics"),
    ]

    operations = [
        migrations.RunSQL(
            "DROP INDEX CONCURRENTLY IF EXISTS message_channel_sent", migrations.RunSQL.noop
        ),
        AddIndexConcurrently(
            model_name="message",
            index=models.Index(
                ExpressionWrapper(F("channel_id") + 0, output_field=models.BigIntegerField()),
                F("sent_at").asc(nulls_first=True),
                F("id"),
                name="message_channel_sent",
            ),
        ),
    ]
