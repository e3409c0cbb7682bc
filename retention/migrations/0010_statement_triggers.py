"""retention_record's guard once per statement, over the statement's rows (issue 20).

0002's row trigger (as 0007 left it) ran a PL/pgSQL call and two or three look-ups for every
record the sequencer or an import inserts and for every record retention_dispose() marks: ~40 %
of a disposition's time was row triggers. The same rules are now checked AFTER each INSERT and
UPDATE statement over its transition tables, in one query each, and still refuse the whole
statement:

- INSERT (one row, many, or COPY): no record is born disposed of; its kind is its ledger entry's
  and is registered as disposable; its `sealed_at` is its entry's; it is kept at least as long
  as its policy says.
- UPDATE, whoever runs it: a record is identified by its seq, and a statement whose new rows'
  seqs are not exactly its old rows' is refused (so is any change of kind, sealed_at, channel or
  conversation); `retain_until` never decreases; nothing changes once disposed of; only the
  table's owner (that is, retention_dispose()) sets `disposed_at` or `disposition_id`.
- DELETE: refused row by row as before (a row trigger: a statement deleting nothing still
  passes, as Django's cascades expect); TRUNCATE by 0002's statement trigger, unchanged.

Plain SQL rather than pgtrigger, as 0002: `pgtrigger.ignore` cannot switch it off.
"""

import importlib

from django.db import migrations

GUARD_0007 = importlib.import_module("retention.migrations.0007_registries").GUARD

GUARDS = r"""
DROP TRIGGER retention_record_guard ON retention_record;
DROP FUNCTION retention_record_guard();

CREATE FUNCTION retention_record_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'retention: the record of seq % is never deleted', OLD.seq
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER retention_record_guard BEFORE DELETE ON retention_record
    FOR EACH ROW EXECUTE FUNCTION retention_record_guard();

CREATE FUNCTION retention_record_insert_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    bad_seq bigint;
    bad_why text;
BEGIN
    SELECT n.seq,
           CASE WHEN n.disposed_at IS NOT NULL OR n.disposition_id IS NOT NULL
                    THEN 'seq % cannot be recorded as disposed of'
                WHEN n.kind IS DISTINCT FROM e.kind OR NOT EXISTS (
                    SELECT 1 FROM retention_disposablekind k WHERE k.kind = e.kind)
                    THEN 'seq % (' || coalesce(e.kind, 'NULL')
                         || ') is not a captured record that can be disposed of'
                ELSE 'seq % would be kept less than its policy requires' END
      INTO bad_seq, bad_why
      FROM new_records n
      -- OFFSET 0: one look-up by the key per record, whatever the planner guesses of the batch
      LEFT JOIN LATERAL (SELECT l.kind, l.sealed_at FROM archive_ledgerentry l
                          WHERE l.seq = n.seq OFFSET 0) e ON true
      LEFT JOIN retention_retentionpolicy p ON p.id = n.policy_id
     WHERE n.disposed_at IS NOT NULL OR n.disposition_id IS NOT NULL
        OR n.kind IS DISTINCT FROM e.kind
        OR NOT EXISTS (SELECT 1 FROM retention_disposablekind k WHERE k.kind = e.kind)
        OR n.sealed_at IS DISTINCT FROM e.sealed_at
        OR n.retain_until < n.sealed_at + p.days * interval '86400 seconds'
     ORDER BY n.seq
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
            MESSAGE = 'retention: ' || pg_catalog.replace(bad_why, 'seq %', 'seq ' || bad_seq);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER retention_record_insert_guard AFTER INSERT ON retention_record
    REFERENCING NEW TABLE AS new_records
    FOR EACH STATEMENT EXECUTE FUNCTION retention_record_insert_guard();

CREATE FUNCTION retention_record_update_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    bad_seq bigint;
    bad_why text;
    table_owner name;
BEGIN
    -- A record is its seq: every new row must be the old row of the same seq.
    SELECT n.seq INTO bad_seq
      FROM new_records n LEFT JOIN old_records o ON o.seq = n.seq
     WHERE o.seq IS NULL
     ORDER BY n.seq LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'retention: only the retention of seq % may change', bad_seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT n.seq,
           CASE WHEN n.kind IS DISTINCT FROM o.kind OR n.sealed_at IS DISTINCT FROM o.sealed_at
                     OR n.channel_id IS DISTINCT FROM o.channel_id
                     OR n.conversation_id IS DISTINCT FROM o.conversation_id
                    THEN 'only the retention of seq % may change'
                WHEN n.retain_until < o.retain_until
                    THEN 'seq % can be kept longer, never shorter'
                ELSE 'seq % has been disposed of' END
      INTO bad_seq, bad_why
      FROM new_records n JOIN old_records o ON o.seq = n.seq
     WHERE n.kind IS DISTINCT FROM o.kind OR n.sealed_at IS DISTINCT FROM o.sealed_at
        OR n.channel_id IS DISTINCT FROM o.channel_id
        OR n.conversation_id IS DISTINCT FROM o.conversation_id
        OR n.retain_until < o.retain_until
        OR (o.disposed_at IS NOT NULL AND (
            n.retain_until IS DISTINCT FROM o.retain_until
            OR n.policy_id IS DISTINCT FROM o.policy_id
            OR n.disposed_at IS DISTINCT FROM o.disposed_at
            OR n.disposition_id IS DISTINCT FROM o.disposition_id))
     ORDER BY n.seq
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
            MESSAGE = 'retention: ' || pg_catalog.replace(bad_why, 'seq %', 'seq ' || bad_seq);
    END IF;
    -- The disposition marks: the table's owner alone (retention_dispose()) sets them.
    SELECT n.seq INTO bad_seq
      FROM new_records n JOIN old_records o ON o.seq = n.seq
     WHERE n.disposed_at IS DISTINCT FROM o.disposed_at
        OR n.disposition_id IS DISTINCT FROM o.disposition_id
     ORDER BY n.seq LIMIT 1;
    IF FOUND THEN
        SELECT pg_catalog.pg_get_userbyid(relowner) INTO table_owner
          FROM pg_catalog.pg_class WHERE oid = TG_RELID;
        IF current_user <> table_owner THEN
            RAISE EXCEPTION 'retention: only retention_dispose() disposes of seq %', bad_seq
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER retention_record_update_guard AFTER UPDATE ON retention_record
    REFERENCING OLD TABLE AS old_records NEW TABLE AS new_records
    FOR EACH STATEMENT EXECUTE FUNCTION retention_record_update_guard();
"""

ROW_GUARD = (
    """
DROP TRIGGER retention_record_update_guard ON retention_record;
DROP FUNCTION retention_record_update_guard();
DROP TRIGGER retention_record_insert_guard ON retention_record;
DROP FUNCTION retention_record_insert_guard();
DROP TRIGGER retention_record_guard ON retention_record;
DROP FUNCTION retention_record_guard();
"""
    + GUARD_0007
    + """
CREATE TRIGGER retention_record_guard BEFORE INSERT OR UPDATE OR DELETE ON retention_record
    FOR EACH ROW EXECUTE FUNCTION retention_record_guard();
"""
)


class Migration(migrations.Migration):
    dependencies = [
        ("retention", "0009_imported_kinds"),
        ("archive", "0006_statement_triggers"),
    ]

    operations = [migrations.RunSQL(GUARDS, ROW_GUARD)]
