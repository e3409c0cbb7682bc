-- Create ClientWindow's two database roles and its database. Run once as a PostgreSQL superuser:
--   psql -v owner_password="'...'" -v app_password="'...'" -v auditor_password="'...'" \
--        -f deploy/postgres-roles.sql
-- The owner runs migrations and owns every table; the runtime role (the web server and the
-- worker) gets exactly its privileges from `manage.py migrate` (archive/privileges.py):
-- SELECT and INSERT only on the archive's append-only tables.
CREATE ROLE clientwindow_owner LOGIN PASSWORD :owner_password;
CREATE ROLE clientwindow_app LOGIN PASSWORD :app_password
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
-- Optional: a read-only role for auditors' own verifiers (docs/LEDGER.md); set
-- DATABASE_AUDITOR_ROLE=clientwindow_auditor so that migrate grants it SELECT on the evidence.
CREATE ROLE clientwindow_auditor LOGIN PASSWORD :auditor_password;
CREATE DATABASE clientwindow OWNER clientwindow_owner ENCODING 'UTF8';
REVOKE ALL ON DATABASE clientwindow FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE clientwindow TO clientwindow_app;
GRANT CONNECT ON DATABASE clientwindow TO clientwindow_auditor;
\connect clientwindow
-- PostgreSQL 15 already keeps PUBLIC from creating in the public schema; older servers do not.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
