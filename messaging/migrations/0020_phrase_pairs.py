"""Word pairs for phrase search (review/search.py, docs/SCALE.md §7d).

A phrase's positions are checked on every row holding all its words, and the GIN index on
`search` knows only that a row has them: "the and" in one channel read 1.03M rows (9.3 s) at
10M messages. `message_word_pairs(search)` is the vector of a message's adjacent pairs of short words
("the_and"), each pair a lexeme; its GIN index finds the rows where a phrase's words stand
side by side, and the phrase itself is still checked on those. Only words of at most four
characters are paired: the most frequent words of most languages (the, and, you, will, der,
und, les, que), whose phrases are the slow ones. A phrase with a longer word is found through
that word, which is rarer. Every pair of every word was 28 lexemes a message, nearly all
distinct (1.5M distinct among 2.8M in 100,000 messages): an index as large as the text, an
hour to build at 10M. Pairs of short words are 7 a message, 93,000 distinct in 100,000.
It takes about 20 µs a message: COST 1000 (the default is 100) tells the planner it is dear,
so that the pairs are read from the index rather than computed row by row. An expression index, built CONCURRENTLY: no column is added, so the table is not rewritten
and sealing never waits on it.
"""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import AddIndexConcurrently
from django.contrib.postgres.search import SearchVectorField
from django.db import migrations
from django.db.models import F, Func

PAIRS = """
CREATE OR REPLACE FUNCTION message_word_pairs(words tsvector) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE COST 1000 AS $$
  SELECT coalesce(
    pg_catalog.array_to_tsvector(pg_catalog.array_agg(DISTINCT a.lexeme || '_' || b.lexeme)),
    ''::pg_catalog.tsvector)
  FROM (SELECT lexeme, pg_catalog.unnest(positions) AS at FROM pg_catalog.unnest(words)
        WHERE pg_catalog.char_length(lexeme) <= 4) a
  JOIN (SELECT lexeme, pg_catalog.unnest(positions) AS at FROM pg_catalog.unnest(words)
        WHERE pg_catalog.char_length(lexeme) <= 4) b
    ON b.at = a.at + 1
$$
"""


INDEX = GinIndex(
    Func(F("search"), function="message_word_pairs", output_field=SearchVectorField()),
    name="message_phrase_pairs",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("messaging", "0019_channel_filtered_on_rows"),
    ]

    # Run again after an interruption (minutes at 10M): the function is replaced, and an
    # index a cancelled CONCURRENTLY build left invalid is dropped before the build.
    operations = [
        migrations.RunSQL(PAIRS, "DROP FUNCTION message_word_pairs(tsvector)"),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="message", index=INDEX)],
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX CONCURRENTLY IF EXISTS message_phrase_pairs",
                    migrations.RunSQL.noop,
                ),
                AddIndexConcurrently(model_name="message", index=INDEX),
            ],
        ),
    ]
