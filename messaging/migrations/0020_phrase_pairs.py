"""Word pairs for phrase search (review/search.py, docs/SCALE.md §7d).

A phrase's positions are checked on every row holding all its words, and the GIN index on
`search` knows only that a row has them: "the and" in one channel read 1.03M rows (9.3 s) at
10M messages. `message_word_pairs(search)` is the vector of a message's adjacent word pairs
("the_and"), each pair a lexeme; its GIN index finds the rows where a phrase's words stand
side by side, and the phrase itself is still checked on those. An expression index, built
CONCURRENTLY: no column is added, so the table is not rewritten and sealing never waits on it.
Pairs longer than a lexeme may be (2,046 bytes) are left out rather than refused.
"""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import AddIndexConcurrently
from django.contrib.postgres.search import SearchVectorField
from django.db import migrations
from django.db.models import F, Func

PAIRS = """
CREATE FUNCTION message_word_pairs(words tsvector) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(
    pg_catalog.array_to_tsvector(pg_catalog.array_agg(DISTINCT a.lexeme || '_' || b.lexeme)),
    ''::pg_catalog.tsvector)
  FROM (SELECT lexeme, pg_catalog.unnest(positions) AS at FROM pg_catalog.unnest(words)) a
  JOIN (SELECT lexeme, pg_catalog.unnest(positions) AS at FROM pg_catalog.unnest(words)) b
    ON b.at = a.at + 1
  WHERE pg_catalog.octet_length(a.lexeme) + pg_catalog.octet_length(b.lexeme) < 2046
$$
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("messaging", "0019_channel_filtered_on_rows"),
    ]

    operations = [
        migrations.RunSQL(PAIRS, "DROP FUNCTION message_word_pairs(tsvector)"),
        AddIndexConcurrently(
            model_name="message",
            index=GinIndex(
                Func(F("search"), function="message_word_pairs", output_field=SearchVectorField()),
                name="message_phrase_pairs",
            ),
        ),
    ]
