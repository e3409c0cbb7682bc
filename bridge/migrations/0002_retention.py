"""Bridge records under retention: the guard accepts their kinds, retention_dispose() blanks them,
and the bridge starts reading the ledger from where it is now (never notifying or journaling an
archive's past when it is installed).

History, kept because installed databases have applied it: the `.replace` on retention's
function source below is superseded. retention/migrations/0007_registries.py rewrites both
functions over registries, and 0003_retention_registry.py registers the bridge's kinds and its
blanker there. `run_before` makes this migration run before retention 0007 on every database,
so what it writes is always replaced and the end state never depends on this text."""

import importlib

from django.db import migrations

GUARD_0005 = importlib.import_module("retention.migrations.0005_guard_captured_kinds")
DISPOSE_0006 = importlib.import_module("retention.migrations.0006_dispose_repeats")

KINDS_BEFORE = """'conversation', 'participant', 'participant.profile', 'message.attachment',
            'media.file']) THEN"""
KINDS_AFTER = """'conversation', 'participant', 'participant.profile', 'message.attachment',
            'media.file', 'email.inbound', 'message.send', 'message.send_failed']) THEN"""
assert KINDS_BEFORE in GUARD_0005.GUARD
GUARD = GUARD_0005.GUARD.replace(KINDS_BEFORE, KINDS_AFTER)

ANCHOR = "    PERFORM pg_catalog.set_config('pgtrigger.ignore', coalesce("
BRIDGE = """    UPDATE bridge_inboundemail e
       SET raw = ''::bytea, envelope_from = '', envelope_to = '{}', sender = '',
           message_id = '', reason = ''
     WHERE e.seq = ANY(p_seqs);
    UPDATE bridge_outbound o SET request = '{}'::jsonb, response = NULL, sender = '', error = ''
     WHERE o.send_seq = ANY(p_seqs) OR o.result_seq = ANY(p_seqs);

"""
assert DISPOSE_0006.DISPOSE.count(ANCHOR) == 1
DISPOSE = DISPOSE_0006.DISPOSE.replace(ANCHOR, BRIDGE + ANCHOR)

START_AT_HEAD = """
INSERT INTO bridge_bridgecursor (id, planned_through)
SELECT 1, coalesce((SELECT size FROM archive_chainhead LIMIT 1), 0) - 1
ON CONFLICT (id) DO NOTHING
"""


class Migration(migrations.Migration):
    dependencies = [
        ("bridge", "0001_initial"),
        ("retention", "0006_dispose_repeats"),
    ]
    run_before = [("retention", "0007_registries")]

    operations = [
        migrations.RunSQL(GUARD, GUARD_0005.GUARD),
        migrations.RunSQL(DISPOSE, DISPOSE_0006.DISPOSE),
        migrations.RunSQL(START_AT_HEAD, migrations.RunSQL.noop),
    ]
