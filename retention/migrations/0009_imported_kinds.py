"""Chat imports under retention (imports/, docs/IMPORTS.md), as registered data: the ledger kinds
an import seals become disposable kinds, and `imports_retention_blank()` blanks what an imported
entry and an uploaded export keep beyond the rows retention_dispose() already blanks (a message an
import created is a messaging_message row, blanked like a captured one; the upload's bytes are a
media file, removed like any other).

Registered here rather than by imports/ itself: retention is the floor above imports, and owns
its registries' SQL. Not SECURITY DEFINER, owned by the owner role, revoked from PUBLIC, like
bridge_retention_blank() (bridge/migrations/0003_retention_registry.py).
"""

from django.db import migrations

# import.started / import.finished are job records, kept with the ledger (no retention record)
KINDS = ("message.imported", "chat.export")

BLANK = """
CREATE FUNCTION imports_retention_blank(p_seqs bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE messaging_importedmessage i
       SET author = '', local_time = '', flags = '[]'::jsonb, match_key = 'disposed:' || i.seq
     WHERE i.seq = ANY(p_seqs);
    UPDATE messaging_chatexport x SET file_name = '', custodian = ''
     WHERE x.seq = ANY(p_seqs);
END;
$$;
REVOKE ALL ON FUNCTION imports_retention_blank(bigint[]) FROM PUBLIC;
"""

REGISTER = [
    *(
        ("INSERT INTO retention_disposablekind (kind, app) VALUES (%s, 'imports')", [k])
        for k in KINDS
    ),
    "INSERT INTO retention_blanker (function, app) VALUES ('imports_retention_blank', 'imports')",
]
UNREGISTER = """
DELETE FROM retention_blanker WHERE app = 'imports';
DELETE FROM retention_disposablekind WHERE app = 'imports';
"""


class Migration(migrations.Migration):
    dependencies = [
        ("retention", "0008_object_lock"),
        ("messaging", "0010_chat_exports"),
    ]

    operations = [
        migrations.RunSQL(BLANK, "DROP FUNCTION imports_retention_blank(bigint[])"),
        migrations.RunSQL(REGISTER, UNREGISTER),
    ]
