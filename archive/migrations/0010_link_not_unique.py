"""The ledger's `UNIQUE (link)` dropped (docs/SCALE.md §6 and §7e).

Each entry's link is `sha256(0x02 ‖ link of seq − 1 ‖ leaf_hash)`, which the chain check
(archive 0006, statement level) enforces on every insert, and `seq` is the primary key: two
entries with one link would be a SHA-256 collision. The unique index guarded nothing the chain
does not, and nothing looks an entry up by its link; but it is a random-key btree, 78 B a
message and four levels deep at 10M, and every sealed entry inserted into a random leaf of it.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0009_content_seq_covered_by_unique"),
    ]

    operations = [
        migrations.AlterField(
            model_name="ledgerentry",
            name="link",
            field=models.BinaryField(),
        ),
    ]
