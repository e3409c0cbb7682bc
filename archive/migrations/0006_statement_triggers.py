"""The chain check once per statement, over the statement's rows (issue 20).

0002's row trigger ran a PL/pgSQL call, a look-up of seq - 1 and two hashes for every entry; the
sequencer, imports and disposition all paid it. The rules are unchanged, and still refuse the
whole statement: every inserted entry's `leaf_hash` is sha256(0x00 ‖ envelope), the entry before
it (seq 0: the zero link) exists, and its `link` is sha256(0x02 ‖ that entry's link ‖ leaf_hash).
They are now checked AFTER the statement, over its transition table: the ledger then holds the
statement's rows as well, so an entry's predecessor is found in the same batch (a hash join) or,
for the batch's first entry, by the primary key. One statement decides for INSERT, multi-row
INSERT and COPY alike; UPDATE, DELETE and TRUNCATE stay refused as before (privileges, 0001's
triggers).

Plain SQL rather than pgtrigger, as 0002: `pgtrigger.ignore` cannot switch it off.
"""

from django.db import migrations

CHAIN_CHECK = r"""
DROP TRIGGER archive_ledger_chain_check ON archive_ledgerentry;
DROP FUNCTION archive_ledger_chain_check();
CREATE FUNCTION archive_ledger_chain_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    bad_seq bigint;
    bad_why text;
BEGIN
    SELECT n.seq,
           CASE WHEN n.bad_leaf THEN 'leaf_hash of seq % does not match its envelope'
                WHEN n.previous IS NULL THEN 'seq % would leave a gap in the ledger'
                ELSE 'link of seq % does not extend the chain' END
      INTO bad_seq, bad_why
      FROM (
        SELECT e.seq, e.link, e.leaf_hash,
               e.leaf_hash IS DISTINCT FROM pg_catalog.sha256('\x00'::bytea || e.envelope)
                   AS bad_leaf,
               CASE WHEN e.seq = 0 THEN '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
                    -- in the batch, or (its first entry) by the key; COALESCE stops at the first
                    ELSE COALESCE(p.link, (SELECT l.link FROM archive_ledgerentry l
                                            WHERE l.seq = e.seq - 1)) END AS previous
          FROM new_entries e
          LEFT JOIN new_entries p ON p.seq = e.seq - 1
      ) n
     WHERE n.bad_leaf OR n.previous IS NULL
        OR n.link IS DISTINCT FROM pg_catalog.sha256('\x02'::bytea || n.previous || n.leaf_hash)
     ORDER BY n.seq
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
            MESSAGE = 'archive: ' || pg_catalog.replace(bad_why, '%', bad_seq::text);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER archive_ledger_chain_check AFTER INSERT ON archive_ledgerentry
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION archive_ledger_chain_check();
"""

# 0002's row trigger, with 0004's plan setting.
ROW_CHAIN_CHECK = r"""
DROP TRIGGER archive_ledger_chain_check ON archive_ledgerentry;
DROP FUNCTION archive_ledger_chain_check();
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
ALTER FUNCTION archive_ledger_chain_check() SET plan_cache_mode = force_custom_plan;
CREATE TRIGGER archive_ledger_chain_check BEFORE INSERT ON archive_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION archive_ledger_chain_check();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0005_anchoring"),
    ]

    operations = [migrations.RunSQL(CHAIN_CHECK, ROW_CHAIN_CHECK)]
