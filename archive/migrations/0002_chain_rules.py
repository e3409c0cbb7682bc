"""PostgreSQL itself refuses a ledger entry whose hashes or link are wrong, or that leaves a gap.

Written as plain SQL rather than with pgtrigger so that `pgtrigger.ignore` (settable by any role)
cannot switch it off. docs/LEDGER.md states the same rules for outside verifiers.
"""

from django.db import migrations

CHAIN_CHECK = r"""
CREATE FUNCTION archive_ledger_chain_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    previous bytea;
BEGIN
    IF NEW.leaf_hash IS DISTINCT FROM pg_catalog.sha256('\x00'::bytea || NEW.envelope) THEN
        RAISE EXCEPTION 'archive: leaf_hash of seq % does not match its envelope', NEW.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.seq = 0 THEN
        previous := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    ELSE
        SELECT link INTO previous FROM archive_ledgerentry WHERE seq = NEW.seq - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'archive: seq % would leave a gap in the ledger', NEW.seq
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    IF NEW.link IS DISTINCT FROM pg_catalog.sha256('\x02'::bytea || previous || NEW.leaf_hash) THEN
        RAISE EXCEPTION 'archive: link of seq % does not extend the chain', NEW.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER archive_ledger_chain_check BEFORE INSERT ON archive_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION archive_ledger_chain_check();
"""

DROP_CHAIN_CHECK = """
DROP TRIGGER archive_ledger_chain_check ON archive_ledgerentry;
DROP FUNCTION archive_ledger_chain_check();
"""

HEAD = r"""
INSERT INTO archive_chainhead (id, size, link, frontier)
VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea, ''::bytea);
"""


class Migration(migrations.Migration):
    dependencies = [("archive", "0001_initial")]

    operations = [
        migrations.RunSQL(CHAIN_CHECK, DROP_CHAIN_CHECK),
        migrations.RunSQL(HEAD, "DELETE FROM archive_chainhead"),
        migrations.RunSQL(
            """
            ALTER TABLE archive_ledgerentry
                ADD CONSTRAINT ledger_hash_sizes
                CHECK (octet_length(leaf_hash) = 32 AND octet_length(link) = 32);
            ALTER TABLE archive_checkpoint
                ADD CONSTRAINT checkpoint_root_size CHECK (octet_length(root) = 32);
            """,
            """
            ALTER TABLE archive_ledgerentry DROP CONSTRAINT ledger_hash_sizes;
            ALTER TABLE archive_checkpoint DROP CONSTRAINT checkpoint_root_size;
            """,
        ),
    ]
