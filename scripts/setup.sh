#!/usr/bin/env bash
# `make setup`: install what ClientWindow needs, idempotently, on a Debian 12 machine with Python.
# Debian packages are installed when missing and we are root; otherwise we say what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  postgresql postgresql-contrib            # the embedded cluster for `make run` and `make test`
  libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 libjpeg62-turbo  # WeasyPrint (PDF exports)
  fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji fonts-dejavu-core  # scripts, CJK, emoji
  python3-venv                             # to install uv without touching the system Python
  chromium                                 # real-browser tests (tests/e2e, Playwright drives Debian's Chromium)
  dovecot-imapd                            # a real IMAP server for tests/bridge/test_imap.py (run from a temp dir)
  redis-server                             # django-q2's Redis broker, tested in tests/deployment (run from a temp dir)
  openssl                                  # the loopback RFC 3161 TSA (scripts/local_tsa.py) and VERIFY.md's checks
  poppler-utils                            # pdfsig: tests check signed transcripts with a second validator
)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # the tests run their own dovecot from a temporary folder: no system IMAP service wanted
    if [[ " ${missing[*]} " == *" dovecot-imapd "* ]] && command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now dovecot >/dev/null 2>&1 || true
    fi
    # likewise redis: tests/deployment starts its own on a free port when it needs one
    if [[ " ${missing[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
  else
    echo "setup: these Debian packages are missing; install them as root:" >&2
    echo "  apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

# uv, from PyPI, into var/tools unless one is on PATH already.
if ! command -v uv >/dev/null 2>&1 && [ ! -x var/tools/bin/uv ]; then
  echo "setup: installing uv into var/tools"
  python3 -m venv var/tools
  var/tools/bin/pip install --quiet uv
fi
UV=$(command -v uv || echo var/tools/bin/uv)

# The locked Python dependencies (never a downloaded interpreter: this machine has Python).
UV_PYTHON_DOWNLOADS=never "$UV" sync --frozen --quiet
