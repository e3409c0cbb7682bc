"""Issue 20: what verify_archive needs to check only what is new.

Each verification run says how it ran (mode, from_seq), and an intact one records the newest
checkpoint it verified with the frontier and link there (archive_verifiedcheckpoint, append-only
like the other evidence tables: the runtime role gets SELECT and INSERT from privileges.py)."""

import django.db.models.deletion
import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0006_statement_triggers"),
    ]

    operations = [
        migrations.AddField(
            model_name="verificationrun",
            name="from_seq",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="verificationrun",
            name="mode",
            field=models.CharField(db_default="full", default="full", max_length=16),
        ),
        migrations.CreateModel(
            name="VerifiedCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("root", models.BinaryField()),
                ("link", models.BinaryField()),
                ("frontier", models.BinaryField()),
                ("verified_by", models.TextField()),
                (
                    "checkpoint",
                    models.ForeignKey(
                        db_column="tree_size",
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="verifications",
                        to="archive.checkpoint",
                    ),
                ),
                (
                    "run",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="verified_checkpoint",
                        to="archive.verificationrun",
                    ),
                ),
            ],
            options={
                "db_table": "archive_verifiedcheckpoint",
                "ordering": ["-checkpoint_id", "-id"],
            },
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="verifiedcheckpoint",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'pgtrigger: Cannot update or delete rows from % table', TG_TABLE_NAME;",
                    hash="9e47cb96f197973d05ee50a9198eb5d7cb0e2588",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_35fdb",
                    table="archive_verifiedcheckpoint",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="verifiedcheckpoint",
            trigger=pgtrigger.compiler.Trigger(
                name="no_truncate",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; TRUNCATE refused', TG_TABLE_NAME;",
                    hash="39521d4e88974c676ca70701d073416a83e99536",
                    level="STATEMENT",
                    operation="TRUNCATE",
                    pgid="pgtrigger_no_truncate_34045",
                    table="archive_verifiedcheckpoint",
                    when="BEFORE",
                ),
            ),
        ),
    ]
