"""Bridge records under retention, as registered data: retention's registries
(retention/migrations/0007_registries.py) learn the bridge's three ledger kinds, and
`bridge_retention_blank()`, which retention_dispose() calls to blank the reply emails and send
requests it disposes of.

`bridge_retention_blank()` does exactly the two UPDATEs 0002_retention.py once spliced into
retention_dispose()'s source. It is not SECURITY DEFINER: it runs inside retention_dispose(),
as its owner, with the append-only triggers set aside for that call. It is owned by the owner
role (which retention_dispose() checks) and revoked from PUBLIC: nothing else may call it.
Reversing this migration removes both registrations and the function.
"""

from django.db import migrations

KINDS = ("email.inbound", "message.send", "message.send_failed")  # retention/assign.py: bridged

BLANK = """
CREATE FUNCTION bridge_retention_blank(p_seqs bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE bridge_inboundemail e
       SET raw = ''::bytea, envelope_from = '', envelope_to = '{}', sender = '',
           message_id = '', reason = ''
     WHERE e.seq = ANY(p_seqs);
    UPDATE bridge_outbound o SET request = '{}'::jsonb, response = NULL, sender = '', error = ''
     WHERE o.send_seq = ANY(p_seqs) OR o.result_seq = ANY(p_seqs);
END;
$$;
REVOKE ALL ON FUNCTION bridge_retention_blank(bigint[]) FROM PUBLIC;
"""

REGISTER = [
    *(
        ("INSERT INTO retention_disposablekind (kind, app) VALUES (%s, 'bridge')", [k])
        for k in KINDS
    ),
    "INSERT INTO retention_blanker (function, app) VALUES ('bridge_retention_blank', 'bridge')",
]
UNREGISTER = """
DELETE FROM retention_blanker WHERE app = 'bridge';
DELETE FROM retention_disposablekind WHERE app = 'bridge';
"""


class Migration(migrations.Migration):
    dependencies = [
        ("bridge", "0002_retention"),
        ("retention", "0007_registries"),
    ]

    operations = [
        migrations.RunSQL(BLANK, "DROP FUNCTION bridge_retention_blank(bigint[])"),
        migrations.RunSQL(REGISTER, UNREGISTER),
    ]
