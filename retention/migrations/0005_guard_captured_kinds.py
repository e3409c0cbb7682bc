"""A retention record may only be made for a captured record, under its own ledger kind.

Without this, the runtime role could give an audit entry (a legal hold's creation, a
disposition, a GDPR decision) a retention record under a 0-day policy, and retention_dispose()
would then delete that entry's committed contents.
"""

from django.db import migrations

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
        IF NEW.kind IS DISTINCT FROM entry_kind OR NOT entry_kind = ANY (ARRAY[
            'message', 'message.status', 'account.event', 'item.unparsed', 'webhook.delivery',
            'conversation', 'participant', 'participant.profile', 'message.attachment',
            'media.file']) THEN
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

PREVIOUS = r"""
CREATE OR REPLACE FUNCTION retention_record_guard() RETURNS trigger
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
"""


class Migration(migrations.Migration):
    dependencies = [("retention", "0004_erasure_covered_and_bounds")]

    operations = [migrations.RunSQL(GUARD, PREVIOUS)]
