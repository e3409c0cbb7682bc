#!/usr/bin/env bash
# Run by `make test` inside a throwaway PostgreSQL cluster (scripts/localdev.py sets DATABASE_*):
# lint first (ruff, mypy, migrations, the deploy checks), then the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=$(command -v uv || echo var/tools/bin/uv)
run() { UV_PYTHON_DOWNLOADS=never "$UV" run --frozen --quiet "$@"; }

echo "== lint: ruff"
run ruff check .
run ruff format --check .
echo "== lint: mypy (domain modules)"
run mypy archive access clientwindow messaging review imports exports retention bridge
echo "== lint: each app imports only the floors below it (import-linter, pyproject.toml)"
run lint-imports --no-cache
echo "== lint: migrations are complete"
run python manage.py makemigrations --check --dry-run
echo "== lint: check --deploy under a production-like environment"
keydir=$(mktemp -d)
trap 'rm -rf "$keydir"' EXIT
run python manage.py create_signing_key "$keydir/signing-key.pem" >/dev/null
# a transcript signing pair, whose certificate also stands in for a TSA's root
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=check --deploy" \
  -addext keyUsage=critical,digitalSignature,nonRepudiation \
  -keyout "$keydir/transcript-key.pem" -out "$keydir/transcript-cert.pem" 2>/dev/null
env -u CLIENTWINDOW_LOCAL -u CLIENTWINDOW_DEBUG \
  DJANGO_SECRET_KEY="$(head -c 48 /dev/urandom | base64 | tr -d '\n')" \
  ALLOWED_HOSTS=archive.example.com LEDGER_SIGNING_KEY_FILE="$keydir/signing-key.pem" \
  EMAIL_URL=smtp://relay.example.com:25 PORTAL_URL=https://archive.example.com \
  BRIDGE_TRUSTED_AUTHSERV_ID=mx.example.com \
  STORAGE_URL=s3://archive-records EXPORT_STORAGE_URL=s3://archive-exports \
  TSA_URLS=https://tsa.example.com/ TSA_CA_FILE="$keydir/transcript-cert.pem" \
  TRANSCRIPT_SIGNING_CERT_FILE="$keydir/transcript-cert.pem" \
  TRANSCRIPT_SIGNING_KEY_FILE="$keydir/transcript-key.pem" \
  UV_PYTHON_DOWNLOADS=never "$UV" run --frozen --quiet \
  python manage.py check --deploy --fail-level WARNING
[ "${1:-}" = "--lint-only" ] && exit 0

# On every core (pytest-xdist): each worker has a test database of its own (tests/conftest.py).
# worksteal: a worker that runs out takes tests from the other's queue, so the slow ones (the
# two-node deployment, the schemathesis runs) do not leave one core idle at the end.
# PYTEST_WORKERS=0 runs them in this one process, as a bare `uv run pytest` does.
workers=${PYTEST_WORKERS:-$(nproc)}
[ "$workers" -lt 2 ] && workers=0
echo "== tests ($([ "$workers" -eq 0 ] && echo "one process" || echo "$workers workers"))"
run pytest -n "$workers" --dist worksteal "$@"
