"""Statistics for search's channel condition (review/search.py, docs/SCALE.md §7d).

At 10M messages the planner ANDed the channel index's bitmap of a whole channel (3.2M rows,
350-540 ms) with a word's GIN bitmap of a few hundred. Search now writes its channel condition
as `channel_id + 0`, which no index serves; the statistics on that expression give the planner
the channel's true share of the messages (without them it assumes 0.5 % and sorts every match
of a common word instead of reading the newest messages first). ANALYZE fills them now rather
than at the next autovacuum.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0018_media_index"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE STATISTICS message_channel_unindexed ON ((channel_id + 0))"
            " FROM messaging_message",
            "DROP STATISTICS message_channel_unindexed",
        ),
        migrations.RunSQL("ANALYZE messaging_message", migrations.RunSQL.noop),
    ]
