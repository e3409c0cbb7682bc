"""PostgreSQL keeps the retention rules, whoever connects (docs/RETENTION.md states them).

- `retention_record_guard`: a record's retention can be lengthened, never shortened; it can never
  be deleted; only the table's owner (that is, `retention_dispose()`) marks it disposed of.
- `retention_dispose(seqs, disposition)`: the one way content is deleted. It runs as the owner
  role (SECURITY DEFINER; the runtime role may only EXECUTE it) and refuses the whole call if any
  record is missing, already disposed of, inside retention (by the database's clock) or covered
  by an active legal hold. It deletes the committed contents and salts (archive_content), blanks
  the texts, payloads, raw bodies, numbers and names in the capture tables, queues stored media
  for deletion, and marks the records. Ledger entries are untouched, so the chain still verifies.

Plain SQL rather than pgtrigger, so that `pgtrigger.ignore` (which any role can set) cannot
switch the guard off. The function sets it itself, for the append-only triggers only.
"""

from django.db import migrations

# Disposition and hold changes exclude each other (retention/holds.py takes it exclusively).
HOLD_LOCK = 0x436C5769_486F6C64  # "ClWiHold"

GUARD = r"""
CREATE FUNCTION retention_record_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    table_owner name;
    policy_days integer;
    entry_sealed timestamptz;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'retention: the record of seq % is never deleted', OLD.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.disposed_at IS NOT NULL OR NEW.disposition_id IS NOT NULL THEN
            RAISE EXCEPTION 'retention: seq % cannot be recorded as disposed of', NEW.seq
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        SELECT sealed_at INTO entry_sealed FROM archive_ledgerentry WHERE seq = NEW.seq;
        SELECT days INTO policy_days FROM retention_retentionpolicy WHERE id = NEW.policy_id;
        IF NEW.sealed_at IS DISTINCT FROM entry_sealed
           OR NEW.retain_until < NEW.sealed_at + policy_days * interval '86400 seconds' THEN
            RAISE EXCEPTION 'retention: seq % would be kept less than its policy requires', NEW.seq
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.seq IS DISTINCT FROM OLD.seq OR NEW.kind IS DISTINCT FROM OLD.kind
       OR NEW.sealed_at IS DISTINCT FROM OLD.sealed_at
       OR NEW.channel_id IS DISTINCT FROM OLD.channel_id
       OR NEW.conversation_id IS DISTINCT FROM OLD.conversation_id THEN
        RAISE EXCEPTION 'retention: only the retention of seq % may change', OLD.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.retain_until < OLD.retain_until THEN
        RAISE EXCEPTION 'retention: seq % can be kept longer, never shorter', OLD.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.disposed_at IS NOT NULL AND (
        NEW.retain_until IS DISTINCT FROM OLD.retain_until
        OR NEW.policy_id IS DISTINCT FROM OLD.policy_id
        OR NEW.disposed_at IS DISTINCT FROM OLD.disposed_at
        OR NEW.disposition_id IS DISTINCT FROM OLD.disposition_id) THEN
        RAISE EXCEPTION 'retention: seq % has been disposed of', OLD.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.disposed_at IS DISTINCT FROM OLD.disposed_at
       OR NEW.disposition_id IS DISTINCT FROM OLD.disposition_id THEN
        SELECT pg_catalog.pg_get_userbyid(relowner) INTO table_owner
            FROM pg_catalog.pg_class WHERE oid = TG_RELID;
        IF current_user <> table_owner THEN
            RAISE EXCEPTION 'retention: only retention_dispose() disposes of seq %', OLD.seq
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER retention_record_guard BEFORE INSERT OR UPDATE OR DELETE ON retention_record
    FOR EACH ROW EXECUTE FUNCTION retention_record_guard();
CREATE FUNCTION retention_record_no_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'retention: % is never truncated', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER retention_record_no_truncate BEFORE TRUNCATE ON retention_record
    FOR EACH STATEMENT EXECUTE FUNCTION retention_record_no_truncate();
"""

DROP_GUARD = """
DROP TRIGGER retention_record_no_truncate ON retention_record;
DROP FUNCTION retention_record_no_truncate();
DROP TRIGGER retention_record_guard ON retention_record;
DROP FUNCTION retention_record_guard();
"""

DISPOSE = rf"""
CREATE FUNCTION retention_dispose(p_seqs bigint[], p_disposition bigint)
RETURNS TABLE (seq bigint, kind text, policy_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    bad_seq bigint;
    bad_why text;
    protect text[];
    previous text;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock_shared({HOLD_LOCK});
    PERFORM 1 FROM retention_record r WHERE r.seq = ANY(p_seqs) ORDER BY r.seq FOR UPDATE;
    SELECT s.seq,
           CASE WHEN r.seq IS NULL THEN 'has no retention record'
                WHEN r.disposed_at IS NOT NULL THEN 'has already been disposed of'
                WHEN r.retain_until > pg_catalog.now()
                    THEN 'is inside retention until ' || r.retain_until::text
                ELSE 'is under the legal hold ' || pg_catalog.quote_literal(h.matter) END
      INTO bad_seq, bad_why
      FROM pg_catalog.unnest(p_seqs) AS s(seq)
      LEFT JOIN retention_record r ON r.seq = s.seq
      LEFT JOIN LATERAL (
          SELECT l.matter FROM retention_holditem i
            JOIN retention_legalhold l ON l.id = i.hold_id
           WHERE i.seq = s.seq AND l.released_at IS NULL LIMIT 1) h ON true
     WHERE r.seq IS NULL OR r.disposed_at IS NOT NULL OR r.retain_until > pg_catalog.now()
        OR h.matter IS NOT NULL
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'retention: seq % %; nothing was disposed of', bad_seq, bad_why
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;

    -- The append-only tables' pgtrigger triggers step aside for this function's changes only.
    SELECT pg_catalog.array_agg(tgname::text) INTO protect
      FROM pg_catalog.pg_trigger WHERE tgname LIKE 'pgtrigger\_append\_only\_%';
    previous := pg_catalog.current_setting('pgtrigger.ignore', true);
    PERFORM pg_catalog.set_config('pgtrigger.ignore', protect::text, true);

    DELETE FROM archive_content c WHERE c.seq = ANY(p_seqs);
    UPDATE messaging_message m
       SET text = '', payload = '{{}}'::jsonb, wamid = 'disposed:' || m.seq,
           target_wamid = '', context_wamid = ''
     WHERE m.seq = ANY(p_seqs);
    UPDATE messaging_statusevent e
       SET payload = '{{}}'::jsonb, recipient_id = '', wamid = 'disposed:' || e.seq
     WHERE e.seq = ANY(p_seqs);
    UPDATE messaging_accountevent e SET payload = '{{}}'::jsonb WHERE e.seq = ANY(p_seqs);
    UPDATE messaging_unparseditem u SET raw = '' WHERE u.seq = ANY(p_seqs);
    UPDATE messaging_delivery d SET body = ''::bytea, headers = '{{}}'::jsonb
      FROM messaging_deliveryseal s WHERE s.delivery_id = d.id AND s.seq = ANY(p_seqs);
    UPDATE messaging_participant p
       SET key = 'disposed:' || p.id, wa_id = '', user_id = ''
     WHERE p.seq = ANY(p_seqs);
    UPDATE messaging_participantprofile p
       SET name = '', username = '', parent_user_id = ''
     WHERE p.seq = ANY(p_seqs);
    UPDATE messaging_conversation c
       SET key = 'disposed:' || c.id, group_id = ''
     WHERE c.seq = ANY(p_seqs);
    INSERT INTO retention_pendingdeletion (storage_name, disposition_id)
         SELECT f.storage_name, p_disposition FROM messaging_mediafile f
          WHERE f.seq = ANY(p_seqs) AND f.storage_name <> '';
    UPDATE messaging_mediafile f SET sha256 = 'disposed:' || f.seq, storage_name = ''
     WHERE f.seq = ANY(p_seqs);

    PERFORM pg_catalog.set_config('pgtrigger.ignore', coalesce(nullif(previous, ''), '{{}}'), true);

    RETURN QUERY
        UPDATE retention_record r
           SET disposed_at = pg_catalog.now(), disposition_id = p_disposition
         WHERE r.seq = ANY(p_seqs)
     RETURNING r.seq, r.kind::text, r.policy_id;
END;
$$;
REVOKE ALL ON FUNCTION retention_dispose(bigint[], bigint) FROM PUBLIC;
-- archive/privileges.py grants the runtime role EXECUTE after every migrate.
"""  # noqa: S608

DROP_DISPOSE = "DROP FUNCTION retention_dispose(bigint[], bigint);"

DEFAULT_POLICY = """
INSERT INTO retention_retentionpolicy (name, days, rule, is_default, created_at, updated_at)
VALUES (
    'Default: 7 years',
    2557,
    'The longest of the usual minimums: SEC 17a-4 (3 to 6 years), FINRA 4511 (6 years), '
    'CFTC 1.31 (5 years), MiFID II Art. 16(7) and FCA SYSC 10A (5 years, up to 7 on request). '
    'Set the periods that apply to your firm, channel by channel.',
    true, now(), now()
);
"""


class Migration(migrations.Migration):
    dependencies = [("retention", "0001_initial")]

    operations = [
        migrations.RunSQL(GUARD, DROP_GUARD),
        migrations.RunSQL(DISPOSE, DROP_DISPOSE),
        migrations.RunSQL(DEFAULT_POLICY, "DELETE FROM retention_retentionpolicy"),
    ]
