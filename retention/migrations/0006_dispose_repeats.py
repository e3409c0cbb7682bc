"""retention_dispose() also blanks the wamids a disposed webhook body repeated (wamids encode
the phone number): messaging.DuplicateItem links a repeated delivery to what it repeated."""

from django.db import migrations

HOLD_LOCK = 0x436C5769_486F6C64  # "ClWiHold", as in 0002_rules

DISPOSE = rf"""
CREATE OR REPLACE FUNCTION retention_dispose(p_seqs bigint[], p_disposition bigint)
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
    UPDATE messaging_duplicateitem r SET wamid = ''
      FROM messaging_deliveryseal s WHERE s.delivery_id = r.delivery_id AND s.seq = ANY(p_seqs);
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

PREVIOUS = rf"""
CREATE OR REPLACE FUNCTION retention_dispose(p_seqs bigint[], p_disposition bigint)
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


class Migration(migrations.Migration):
    dependencies = [
        ("retention", "0005_guard_captured_kinds"),
        ("messaging", "0005_duplicateitem"),
    ]

    operations = [migrations.RunSQL(DISPOSE, PREVIOUS)]
