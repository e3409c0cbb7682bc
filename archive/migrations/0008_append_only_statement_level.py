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
        ("archive", "0007_incremental_verification"),
    ]

    operations = [
        pgtrigger.migrations.RemoveTrigger(
            model_name="checkpoint",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="checkpointtimestamp",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="content",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="cosignature",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="ledgerentry",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="merklenode",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="publication",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="verificationrun",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="verifiedcheckpoint",
            name="append_only",
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="checkpoint",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="f3fb6353bca90f2e506f117dd69959de8f6dc616",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_5ead1",
                    table="archive_checkpoint",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="checkpointtimestamp",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="0d115e11866dec6259aa25f8b6873b0557161a22",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_f4bba",
                    table="archive_checkpointtimestamp",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="content",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="606c1e6cd407a1d700e93f82feebabda47464ca9",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_28c81",
                    table="archive_content",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="cosignature",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="15af312ff9c34129d0f87ce4585cd5b21c586c09",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_1ec10",
                    table="archive_cosignature",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="ledgerentry",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="e242733500b8c300d1337d32cb6100a4dcf183f8",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_37ce1",
                    table="archive_ledgerentry",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="merklenode",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="4a814029ca74a82da256adb1ba86fe375e96b1ab",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_dd384",
                    table="archive_merklenode",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="publication",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="4f4c0b9eef933337e4a118afdad972b6a1dd739c",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_6450f",
                    table="archive_publication",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="verificationrun",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="479fd27346f205f3328dec4a61fd2dc1381f366d",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_adf05",
                    table="archive_verificationrun",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="verifiedcheckpoint",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="304022bd68474dbe36ae0a0ce4d3f8003a442b04",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_35fdb",
                    table="archive_verifiedcheckpoint",
                    when="BEFORE",
                ),
            ),
        ),
    ]
