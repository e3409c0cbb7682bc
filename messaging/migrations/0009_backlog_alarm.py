"""The backlog alarm's shared state: one row, so only one process logs each episode."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0008_unparsed_bytes_and_reseal"),
    ]

    operations = [
        migrations.CreateModel(
            name="BacklogAlarm",
            fields=[
                ("id", models.SmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("raised_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
    ]
