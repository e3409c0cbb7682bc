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
        ("review", "0005_feed_access_actions"),
    ]

    operations = [
        pgtrigger.migrations.RemoveTrigger(
            model_name="accessevent",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="flagcomment",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="reviewdecision",
            name="append_only",
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="accessevent",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="c2c591f645806b0749329ca4eaea18f7b72a5d43",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_7a7f9",
                    table="review_accessevent",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="flagcomment",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="5ab580508cae2ddc53bd9d54919e62c0d0e5056f",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_7c2ee",
                    table="review_flagcomment",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="reviewdecision",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="63c40814e0be8365dec3e77361468bcd62d4d167",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_f5ef8",
                    table="review_reviewdecision",
                    when="BEFORE",
                ),
            ),
        ),
    ]
