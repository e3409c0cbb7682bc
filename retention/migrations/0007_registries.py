"""Retention owns its SQL; what other apps add to it is registered data.

Two registries, written only by migrations (the owner role; archive/privileges.py leaves the
runtime role SELECT alone, see RUNTIME_READ_ONLY in retention/models.py):

- `retention_disposablekind`: the ledger kinds that may have a retention record.
  `retention_record_guard()` now checks a record's kind against it instead of a literal list;
  this migration registers messaging's ten captured kinds, and every other app registers its
  own (bridge/migrations/0003_retention_registry.py).
- `retention_blanker`: functions `f(p_seqs bigint[])` that `retention_dispose()` calls, in
  name order, to blank what another app keeps for the seqs it disposes of. It calls only a
  function of that signature in `public` owned by its own owner (the owner role), and refuses
  the whole disposal when a registered name is not one.

Everything else the two functions do is unchanged from 0005 and 0006.

bridge/migrations/0002_retention.py once added the bridge's kinds and UPDATEs to the two
functions by string `.replace` on 0005's and 0006's source. It stays, because installed
databases have applied it, but it now runs before this migration (its `run_before`), so this
migration replaces what it wrote on every database, and nothing depends on its text again.
Reversing this migration restores 0005's and 0006's functions, retention's own: to go back
to the bridge's 0002 state too, migrate the bridge to 0001 (which reverses this first).
"""

import importlib

from django.db import migrations, models

GUARD_0005 = importlib.import_module("retention.migrations.0005_guard_captured_kinds")
DISPOSE_0006 = importlib.import_module("retention.migrations.0006_dispose_repeats")
HOLD_LOCK = DISPOSE_0006.HOLD_LOCK

# The ledger kinds messaging seals capture records as (retention/assign.py: KINDS).
CAPTURED = (
    "message",
    "message.status",
    "account.event",
    "item.unparsed",
    "webhook.delivery",
    "conversation",
    "participant",
    "participant.profile",
    "message.attachment",
    "media.file",
)
REGISTER_CAPTURED = [
    ("INSERT INTO retention_disposablekind (kind, app) VALUES (%s, 'messaging')", [kind])
    for kind in CAPTURED
]

GUARD = r"""
CREATE OR REPLACE FUNCTION retention_record_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    table_owner name;
    policy_days integer;
    entry_sealed timestamptz;
    entry_kind text;
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
        SELECT sealed_at, kind INTO entry_sealed, entry_kind
          FROM archive_ledgerentry WHERE seq = NEW.seq;
        IF NEW.kind IS DISTINCT FROM entry_kind OR NOT EXISTS (
            SELECT 1 FROM retention_disposablekind k WHERE k.kind = entry_kind) THEN
            RAISE EXCEPTION 'retention: seq % (%) is not a captured record that can be disposed of',
                NEW.seq, entry_kind USING ERRCODE = 'integrity_constraint_violation';
        END IF;
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
"""

DISPOSE = rf"""
CREATE OR REPLACE FUNCTION retention_dispose(p_seqs bigint[], p_disposition bigint)
RETURNS TABLE (seq bigint, kind text, policy_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    bad_seq bigint;
    bad_why text;
    protect text[];
    previous text;
    blanker record;
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

    -- What other apps keep for these seqs: each registered blanker, in name order. Only a
    -- function of this exact signature that this function's owner owns is ever called.
    FOR blanker IN
        SELECT b.function AS name,
               pg_catalog.to_regprocedure(pg_catalog.format('public.%I(bigint[])', b.function)) AS fn
          FROM retention_blanker b ORDER BY b.function
    LOOP
        IF blanker.fn IS NULL THEN
            RAISE EXCEPTION 'retention: blanker %(bigint[]) does not exist; nothing was disposed of',
                blanker.name USING ERRCODE = 'undefined_function';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.oid = blanker.fn
                          AND pg_catalog.pg_get_userbyid(p.proowner) = current_user) THEN
            RAISE EXCEPTION 'retention: blanker % is not owned by %; nothing was disposed of',
                blanker.fn, current_user USING ERRCODE = 'insufficient_privilege';
        END IF;
        EXECUTE pg_catalog.format('SELECT public.%I($1)', blanker.name) USING p_seqs;
    END LOOP;

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
    dependencies = [("retention", "0006_dispose_repeats")]

    operations = [
        migrations.CreateModel(
            name="DisposableKind",
            fields=[
                ("kind", models.CharField(max_length=32, primary_key=True, serialize=False)),
                (
                    "app",
                    models.CharField(
                        help_text="The app whose migration registered it.", max_length=100
                    ),
                ),
            ],
            options={"ordering": ["kind"]},
        ),
        migrations.CreateModel(
            name="Blanker",
            fields=[
                ("function", models.CharField(max_length=63, primary_key=True, serialize=False)),
                (
                    "app",
                    models.CharField(
                        help_text="The app whose migration registered it.", max_length=100
                    ),
                ),
            ],
            options={
                "ordering": ["function"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("function__regex", "^[a-z_][a-z0-9_]*$")),
                        name="blanker_is_a_name",
                    )
                ],
            },
        ),
        migrations.RunSQL(REGISTER_CAPTURED, migrations.RunSQL.noop),
        migrations.RunSQL(GUARD, GUARD_0005.GUARD),
        migrations.RunSQL(DISPOSE, DISPOSE_0006.DISPOSE),
    ]
