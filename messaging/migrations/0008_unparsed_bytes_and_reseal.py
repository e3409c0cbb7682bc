"""Unparsed items keep their bytes (bytea) and the class of the exception that made them;
re-seals of them by administrators are recorded."""

import django.db.models.deletion
import pgtrigger.compiler
import pgtrigger.migrations
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0004_chain_check_plan"),
        ("messaging", "0007_wakeup"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="unparseditem",
            name="error",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
        # Bytes, not text: PostgreSQL text cannot hold a NUL. convert_to keeps what was stored
        # (the default cast would read backslashes in old rows as bytea escapes).
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE messaging_unparseditem"
                    " ALTER COLUMN raw TYPE bytea USING convert_to(raw, 'UTF8')",
                    "ALTER TABLE messaging_unparseditem"
                    " ALTER COLUMN raw TYPE text USING convert_from(raw, 'UTF8')",
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="unparseditem",
                    name="raw",
                    field=models.BinaryField(),
                ),
            ],
        ),
        migrations.CreateModel(
            name="Reseal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("items", models.IntegerField()),
                ("duplicates", models.IntegerField()),
                ("unparsed_again", models.IntegerField()),
                (
                    "entry",
                    models.ForeignKey(
                        db_column="seq",
                        on_delete=django.db.models.deletion.PROTECT,
                        to="archive.ledgerentry",
                    ),
                ),
                (
                    "requested_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "unparsed",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reseals",
                        to="messaging.unparseditem",
                    ),
                ),
            ],
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="reseal",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'pgtrigger: Cannot update or delete rows from % table', TG_TABLE_NAME;",
                    hash="f1ba980e33d0fcb430455681ff9bd66f20cd8392",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_aba7c",
                    table="messaging_reseal",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="reseal",
            trigger=pgtrigger.compiler.Trigger(
                name="no_truncate",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'archive: % is append-only; TRUNCATE refused', TG_TABLE_NAME;",
                    hash="c856be079f2388a418fd3a343800fe9142cfb9fc",
                    level="STATEMENT",
                    operation="TRUNCATE",
                    pgid="pgtrigger_no_truncate_fb553",
                    table="messaging_reseal",
                    when="BEFORE",
                ),
            ),
        ),
    ]
