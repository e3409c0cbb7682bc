#!/usr/bin/env bash
# Run by `make test` inside a throwaway PostgreSQL cluster (scripts/localdev.py sets DATABASE_*).
set -euo pipefail
cd "$(dirname "$0")/.."
UV=$(command -v uv || echo var/tools/bin/uv)
run() { UV_PYTHON_DOWNLOADS=never "$UV" run --frozen --quiet "$@"; }

echo "== lint: ruff"
run ruff check .
run ruff format --check .
echo "== lint: mypy (domain modules)"
run mypy archive clientwindow
echo "== lint: migrations are complete"
run python manage.py makemigrations --check --dry-run >/dev/null
echo "== lint: check --deploy under a production-like environment"
env -u CLIENTWINDOW_LOCAL DJANGO_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')" \
  ALLOWED_HOSTS=archive.example.com LEDGER_SIGNING_KEY_FILE=/dev/null/absent \
  bash -c "$(declare -f run); run python manage.py check --deploy --fail-level WARNING" || {
    echo "check --deploy failed"; exit 1; }
[ "${1:-}" = "--lint-only" ] && exit 0

echo "== tests"
run pytest "$@"
