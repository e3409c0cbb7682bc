from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("archive", "0002_chain_rules")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE archive_content ADD CONSTRAINT content_salt_size"
            " CHECK (octet_length(salt) = 32)",
            "ALTER TABLE archive_content DROP CONSTRAINT content_salt_size",
        ),
    ]
