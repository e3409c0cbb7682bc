"""The words' GIN index holds the channel too (review/search.py, docs/SCALE.md §7s).

message_search indexed `search` alone: a phrase of long words in one channel ("pension could",
channel 3 at 10M: 11,099 rows hold both words, 2,214 of them in the channel) was read a span
of time at a time, each span's words ANDed with a bitmap of the channel's time from
message_channel_sent (833,054 rows, 53 ms, in its second span), or would have been checked on
every row holding both words (11,067 heap pages). message_channel_search indexes
SEARCH_CHANNEL beside `search` (btree_gin gives the integer a GIN operator class), so the GIN
gives the channel's rows only, in one scan: that phrase's page in one statement, 105 -> 32 ms.

It replaces message_search: a query without a channel reads its words from it as before (a GIN
index of several columns serves any of them), so a message costs one GIN insertion still, one
entry more. Built CONCURRENTLY before the old index is dropped, so search never goes without one
and sealing never waits; at 10M 2 min 46 s (not concurrently, on an idle archive), 883 MB
against the old index's 1,091 MB (grown by insertions since its build).

btree_gin's operator classes compare like types only: the channel written as a bigint is read
through this index, as an integer (as filter_messages writes it) through message_channel_sent or
on the rows, as every other search plan was measured (review/search.py: in_channel).
"""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import AddIndexConcurrently, BtreeGinExtension
from django.db import migrations, models
from django.db.models import ExpressionWrapper, F

INDEX = GinIndex(
    ExpressionWrapper(F("channel_id") + 0, output_field=models.BigIntegerField()),
    F("search"),
    name="message_channel_search",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("messaging", "0022_channel_sent_index"),
    ]

    # Run again after an interruption: an index a cancelled CONCURRENTLY build left invalid is
    # dropped before the build, and the old index only if it is still there.
    operations = [
        BtreeGinExtension(),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="message", index=INDEX)],
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX CONCURRENTLY IF EXISTS message_channel_search",
                    migrations.RunSQL.noop,
                ),
                AddIndexConcurrently(model_name="message", index=INDEX),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveIndex(model_name="message", name="message_search")],
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX CONCURRENTLY IF EXISTS message_search",
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS message_search"
                    " ON messaging_message USING gin (search)",
                )
            ],
        ),
    ]
