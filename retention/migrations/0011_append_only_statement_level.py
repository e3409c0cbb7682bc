"""Issue 20: the append-only protection once per statement, before it (archive/models.py).

The `append_only` trigger of every append-only table here ran, for each row an UPDATE or DELETE
touched, a PL/pgSQL call and pgtrigger's ignore check: the rows retention_dispose() deletes or
blanks paid it one by one (~37 % of a disposition batch). It now fires once per statement,
BEFORE it, and refuses it whatever it matches (a statement matching no row too). Same name and
pgid, so retention_dispose() still passes it through `pgtrigger.ignore`; the runtime role,
refused by privileges first, cannot reach it whatever it sets.
"""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("retention", "0010_statement_triggers"),
    ]

    operations = [
        pgtrigger.migrations.RemoveTrigger(
            model_name="holditem",
            name="append_only",
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="holditem",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="7c18bd7207a40ab81c6772ce3f5789231f25af83",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_80f07",
                    table="retention_holditem",
                    when="BEFORE",
                ),
            ),
        ),
    ]
