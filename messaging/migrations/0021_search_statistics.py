"""A larger statistics sample for the search column (docs/SCALE.md §7c, §7e).

With the default target (100) the planner knows only the ~1,000 most common lexemes and
estimates every rarer word at the frequency of the least common of them, a floor that does not
fall as the archive grows: at 10M messages a word found 761 times was estimated at 13,175 rows,
and the planner walked the newest messages backwards looking for it (544,317 rows, 1.55 s)
instead of reading the GIN's bitmap (19 ms). At 1,000 it is estimated at 1,318: a rare word
without filters, 190 -> 15 ms p50 at 10M.

Tried once before (§7c) and reverted: the larger sample also estimated phrases of two common
words as common and they fell back to a sequential scan (1.1 -> 9.6 s). Such a phrase is now
found through its word pairs (0020), and the same measurement shows no shape slower (§7e).
ANALYZE then samples 300,000 rows instead of 30,000 (18 s at 10M, auto-analyze's cost too); it
runs here so that the estimate holds from the migration on, not from the next auto-analyze.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0020_phrase_pairs"),
    ]

    operations = [
        migrations.RunSQL(
            sql=[
                "ALTER TABLE messaging_message ALTER COLUMN search SET STATISTICS 1000",
                "ANALYZE messaging_message (search)",
            ],
            reverse_sql=["ALTER TABLE messaging_message ALTER COLUMN search SET STATISTICS -1"],
        ),
    ]
