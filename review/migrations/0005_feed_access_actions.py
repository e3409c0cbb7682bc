"""The feeds' access actions, and each access event's transaction id (`xact`) for api/events.py.

Event ids come from a sequence taken at INSERT, so they are not committed in order: a reader
paging by id could pass an id whose row commits later and never see it. `xact` is the writing
transaction's id (pg_current_xact_id(), xid8: 64 bits, never wraps); api/events.py pages by
(xact, id) and returns only rows whose transaction is older than every transaction still
running, a set that can no longer grow. Rows already written get this migration's transaction.
The append-only triggers stay: ADD COLUMN rewrites the table without firing row triggers.
"""

from django.db import migrations, models

XACT = """
ALTER TABLE review_accessevent ADD COLUMN xact xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX review_accessevent_xact_id ON review_accessevent (xact, id);
"""
NO_XACT = """
DROP INDEX review_accessevent_xact_id;
ALTER TABLE review_accessevent DROP COLUMN xact;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0004_import_access_actions"),
    ]

    operations = [
        migrations.AlterField(
            model_name="accessevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("view_conversation", "viewed conversation"),
                    ("search", "searched"),
                    ("download_media", "downloaded media"),
                    ("view_flag", "viewed flag"),
                    ("request_export", "requested export"),
                    ("download_export", "downloaded export"),
                    ("login", "signed in"),
                    ("logout", "signed out"),
                    ("login_failed", "failed to sign in"),
                    ("locked_out", "was locked out"),
                    ("mfa_added", "added a second factor"),
                    ("mfa_removed", "removed a second factor"),
                    ("mfa_failed", "failed a second-factor check"),
                    ("reauthenticated", "confirmed their identity"),
                    ("token_issued", "issued an API token"),
                    ("token_revoked", "revoked an API token"),
                    ("token_refused", "presented a refused API token"),
                    ("upload_chat_export", "uploaded a chat export"),
                    ("view_import", "viewed an import"),
                    ("download_import_report", "downloaded an import report"),
                    ("read_feed", "read the change feed"),
                    ("read_events", "read the access events feed"),
                ],
                max_length=32,
            ),
        ),
        migrations.RunSQL(XACT, NO_XACT),
    ]
