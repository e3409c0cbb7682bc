"""The media still to fetch, found among the messages that carry media (docs/SCALE.md §7c).

Built CONCURRENTLY: a plain CREATE INDEX blocks every insert into messaging_message while it
reads the table (about 20 s at 10M messages), and sealing would wait for it.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("archive", "0009_content_seq_covered_by_unique"),
        ("messaging", "0017_indexes_covered_by_composites"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="message",
            index=models.Index(
                condition=models.Q(
                    ("type__in", ("image", "video", "audio", "document", "sticker"))
                ),
                fields=["id"],
                name="message_media",
            ),
        ),
    ]
