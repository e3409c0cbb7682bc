"""The chain-check trigger's lookup of seq - 1 must always use the primary key: a plan cached
while the ledger looked empty would scan the whole ledger for every inserted entry."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("archive", "0003_content_salt_size")]

    operations = [
        migrations.RunSQL(
            "ALTER FUNCTION archive_ledger_chain_check() SET plan_cache_mode = force_custom_plan",
            "ALTER FUNCTION archive_ledger_chain_check() RESET plan_cache_mode",
        ),
    ]
