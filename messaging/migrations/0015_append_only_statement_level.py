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
        ("messaging", "0013_search_scale"),
    ]

    operations = [
        pgtrigger.migrations.RemoveTrigger(
            model_name="accountevent",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="attachment",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="chatexport",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="conversation",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="delivery",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="deliveryseal",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="duplicateitem",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="importedmessage",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="mediafile",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="message",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="participant",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="participantprofile",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="reseal",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="statusevent",
            name="append_only",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="unparseditem",
            name="append_only",
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="accountevent",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="a81574147f2e18a2d2cb1bef066f70001c50d03a",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_c8442",
                    table="messaging_accountevent",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="attachment",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="a9fd8493e6d91ce105ab89f67d9ccce293d9e059",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_613fe",
                    table="messaging_attachment",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="chatexport",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="60deeb7b92bbec6cea3f0ad3953b8b80382cdb79",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_17ffe",
                    table="messaging_chatexport",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="conversation",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="6c0e70852bcd33f00312132eb4ae366b3b68abb0",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_c7a40",
                    table="messaging_conversation",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="delivery",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="4a21b0ed7041e41a4bd482d9dd8b6b38ac7d5ac0",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_4337e",
                    table="messaging_delivery",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="deliveryseal",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="4249baf32a60eb23e26dc591039b3a3ad77c0514",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_98fb1",
                    table="messaging_deliveryseal",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="duplicateitem",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="5bb8f3532ec1022484467a760839c7c66a9a7f86",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_726fd",
                    table="messaging_duplicateitem",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="importedmessage",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="71e487c701704f7ce28571adb182d01eded581ab",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_5d8b8",
                    table="messaging_importedmessage",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="mediafile",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="bb1afb902253adca9c340de5f3ad54ba6dccbb20",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_55473",
                    table="messaging_mediafile",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="message",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="3492c5df6b419599d605ab318ce2251811bbe764",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_3d7cb",
                    table="messaging_message",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="participant",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="e205fce90573696fc4b1960e87fcbf85a4aa659d",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_d0aea",
                    table="messaging_participant",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="participantprofile",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="36340e9b8ddd45406146aa64bd0356d4f3078ac3",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_12bc9",
                    table="messaging_participantprofile",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="reseal",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="838d1f6866fb56c163571bdeaa6fd38ecd7ef784",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_aba7c",
                    table="messaging_reseal",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="statusevent",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="0bb49ceed9783281c515e5d1a543129872704640",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_33a35",
                    table="messaging_statusevent",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="unparseditem",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; % refused', TG_TABLE_NAME, TG_OP;",
                    hash="15a704e8e502852f27a6da55dc1bdd575ca6ea69",
                    level="STATEMENT",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_f0e5d",
                    table="messaging_unparseditem",
                    when="BEFORE",
                ),
            ),
        ),
    ]
