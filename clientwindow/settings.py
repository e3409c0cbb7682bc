"""ClientWindow settings: every value comes from the environment (see deploy/env.example).

Defaults suit a laptop (`make run`), except where safety needs a decision: DEBUG is off unless the
local-run flag CLIENTWINDOW_LOCAL is set, and a secret key is required outside local runs.
"""

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from archive.storage_config import is_s3, storage_options

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


VAR_DIR = Path(env_str("CLIENTWINDOW_VAR_DIR", str(BASE_DIR / "var")))

# The local-run flag: `make run` and `make test` set it; production never does. A checkout that
# uses its own embedded cluster (no DATABASE_URL, var/pg/data present) is a local run too, so that
# `uv run python manage.py …` works beside `make run` with no extra environment.
EMBEDDED_DATABASE = not env_str("DATABASE_URL")
LOCAL_RUN = env_bool("CLIENTWINDOW_LOCAL", EMBEDDED_DATABASE and (VAR_DIR / "pg" / "data").is_dir())
DEBUG = LOCAL_RUN and env_bool("CLIENTWINDOW_DEBUG", True)


def _local_secret(name: str) -> str:
    """A per-checkout secret for local runs, kept under var/ so it survives restarts."""
    path = VAR_DIR / name
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not LOCAL_RUN:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required outside local runs")
    SECRET_KEY = _local_secret("secret_key")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if LOCAL_RUN else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "pgtrigger",
    "django_q",
    "auditlog",
    "csp",
    "django_htmx",
    "template_partials",
    "axes",  # failed sign-ins and lockout (access/lockout.py)
    "access",  # lockout and session policy's signal receivers
    "allauth",  # accounts: login, MFA, SSO (docs/ACCOUNTS.md)
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "rest_framework",
    # unused since clientwindow.ApiToken (issue 17); kept: clientwindow's 0005 migration needs it
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI for /api/docs/, served from here (no CDN)
    "clientwindow",
    "archive",
    "messaging",
    "review",
    "imports",
    "exports",
    "retention",
    "bridge",
    "api",
    "anymail",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # before the boundary reads the body: 413 for an over-size chat export, the rest to disk
    "imports.uploads.ChatUploadLimit",
    "access.boundary.RefuseMalformedInput",  # 400 for NUL or non-UTF-8 input, first
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "access.headers.no_store",  # Cache-Control on client content (after auth: request.user)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "access.sessions.SessionPolicy",  # idle timeout and absolute lifetime
    "clientwindow.accounts.RequireSecondFactor",  # MFA_REQUIRED: enrolment at first sign-in
    "axes.middleware.AxesMiddleware",  # last: a locked-out sign-in gets the 429 page
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out name and address
    # Django's ModelBackend reading the session's user with its roles in one statement
    "access.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# A strict Content-Security-Policy: no inline script or style anywhere, nothing from elsewhere.
# Everything a client wrote is rendered as text; this is the second wall if escaping ever fails.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "media-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
    },
}

ROOT_URLCONF = "clientwindow.urls"
WSGI_APPLICATION = "clientwindow.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "access.roles.roles_context",
                "exports.context_processors.export_formats",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
# Two roles (docs/DEPLOYMENT in deploy/README.md): DATABASE_URL is the runtime role the web
# server and worker use (SELECT/INSERT only on the archive's record tables); DATABASE_OWNER_URL
# is the owner role that runs migrations. With DATABASE_URL unset, both point at the project's
# own cluster under var/pg, started by `make run`.
PG_SOCKET_DIR = VAR_DIR / "pg" / "run"
PG_PORT = env_int("CLIENTWINDOW_PG_PORT", 5544)


def _embedded_database(user: str) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "clientwindow",
        "USER": user,
        "HOST": str(PG_SOCKET_DIR),
        "PORT": str(PG_PORT),
    }


def _database(url_var: str, embedded_user: str) -> dict[str, Any]:
    url = env_str(url_var)
    config: dict[str, Any] = (
        dict(dj_database_url.parse(url)) if url else _embedded_database(embedded_user)
    )
    # No JIT compilation: it compiled for a second before a 0.6 s search statement at 10M
    # messages (docs/SCALE.md §7d), and no statement here runs long enough to repay it.
    options = dict(config.get("OPTIONS") or {})
    options["options"] = f"{options.get('options', '')} -c jit=off".strip()
    config["OPTIONS"] = options
    config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
    # a connection kept from an earlier request is checked before it is used again, without
    # the SELECT 1 round trip Django's check sends (archive/backend/base.py)
    config["CONN_HEALTH_CHECKS"] = True
    if config["ENGINE"] == "django.db.backends.postgresql":
        config["ENGINE"] = "archive.backend"
    config["TIME_ZONE"] = None
    return config


DATABASES: dict[str, dict[str, Any]] = {"default": _database("DATABASE_URL", "clientwindow_app")}
if env_str("DATABASE_OWNER_URL") or EMBEDDED_DATABASE:
    DATABASES["owner"] = _database("DATABASE_OWNER_URL", "clientwindow_owner")
DATABASE_ROUTERS = ["archive.privileges.OwnerMigratesRouter"]
# A role that may only read the archive's tables: for auditors' own verifiers (docs/LEDGER.md).
DATABASE_AUDITOR_ROLE = env_str(
    "DATABASE_AUDITOR_ROLE", "clientwindow_auditor" if EMBEDDED_DATABASE else ""
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Time: stored in UTC, shown in the firm's zone -----------------------------------------
USE_TZ = True
TIME_ZONE = env_str("FIRM_TIME_ZONE", "UTC")
# The data controller named in the GDPR record of processing (retention/record_of_processing.py).
FIRM_NAME = env_str("FIRM_NAME", "")
LANGUAGE_CODE = "en-gb"  # its formats: dates typed and shown day first
# No translation machinery: the portal is written in English, and every catalog Django and its
# apps ship for en-gb says what the source says. Each lazy string looked up the active language
# through a context-local: ~0.75 ms of every page (docs/SCALE.md §7v).
USE_I18N = False

# --- Static files --------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = LOCAL_RUN

# --- Security ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if not LOCAL_RUN:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers probe over plain HTTP and do not follow redirects (clientwindow/probes.py).
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    # HSTS preload submits the firm's whole domain to browsers' lists: the operator's decision
    # (SECURE_HSTS_PRELOAD), not a default; so its reminder is not a deploy-check failure.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
    if env_bool("SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Every access and security event also as a JSON line for a SIEM (review/security_log.py):
# udp://host:port (RFC 5424 syslog), tcp://host:port (RFC 6587 octet counting), or a file path.
SECURITY_EVENTS_SYSLOG = env_str("SECURITY_EVENTS_SYSLOG")

# --- The ledger ----------------------------------------------------------------------------
# The checkpoint signing key lives outside the database: a PEM (PKCS#8 Ed25519) file.
LEDGER_ORIGIN = env_str("LEDGER_ORIGIN", "clientwindow.local/ledger")
LEDGER_SIGNING_KEY_FILE = Path(
    env_str("LEDGER_SIGNING_KEY_FILE", str(VAR_DIR / "ledger-signing-key.pem"))
)
# Local runs create the key on first use; production must provide one (check archive.E002).
LEDGER_SIGNING_KEY_AUTOCREATE = LOCAL_RUN
# Verifier keys of retired signing keys, so old checkpoints still verify after a rotation.
LEDGER_PREVIOUS_VERIFIER_KEYS = env_list("LEDGER_PREVIOUS_VERIFIER_KEYS")
LEDGER_CHECKPOINT_MINUTES = env_int("LEDGER_CHECKPOINT_MINUTES", 5)

# --- Evidence anchored outside the database (docs/LEDGER.md §6, docs/ANCHORING.md) ----------
# RFC 3161 timestamp authorities, tried in order, for every checkpoint; TSA_CA_FILE holds the
# PEM certificates a token's signer must chain to (the TSA's root, and any intermediates).
TSA_URLS = env_list("TSA_URLS")
TSA_CA_FILE = env_str("TSA_CA_FILE")
if LOCAL_RUN and not TSA_CA_FILE and (VAR_DIR / "tsa" / "root.pem").is_file():
    # the root of `LOCAL_TSA=1 make run`'s TSA: management commands check its tokens too
    TSA_CA_FILE = str(VAR_DIR / "tsa" / "root.pem")
# How much earlier than a checkpoint's own time its timestamp may say it is (clock skew).
TSA_TOLERANCE_SECONDS = env_int("TSA_TOLERANCE_SECONDS", 300)
TSA_TIMEOUT = env_int("TSA_TIMEOUT", 20)
# Every checkpoint note and token are written to the records store (a WORM bucket in
# production); with CHECKPOINT_DIR set, to that directory too.
CHECKPOINT_DIR = env_str("CHECKPOINT_DIR")
# C2SP tlog-witness submission prefixes, and the witnesses' verifier keys (vkeys, type 0x04).
WITNESS_URLS = env_list("WITNESS_URLS")
WITNESS_KEYS = env_list("WITNESS_KEYS")
WITNESS_TIMEOUT = env_int("WITNESS_TIMEOUT", 20)
# The read API monitors follow (/ledger/checkpoint, /ledger/tile/…): off, public or token.
LEDGER_API_ACCESS = env_str("LEDGER_API_ACCESS", "off")
LEDGER_API_TOKENS = env_list("LEDGER_API_TOKENS")
# A duty that fails is retried after 1, 2, 4 … minutes, at most ANCHOR_RETRY_MAX_MINUTES.
ANCHOR_RETRY_MAX_MINUTES = env_int("ANCHOR_RETRY_MAX_MINUTES", 60)
# The PAdES signature on PDF transcripts: the firm's certificate (with its chain) and key.
# Local runs create a self-signed pair under var/ and say so on the transcript's cover.
TRANSCRIPT_SIGNING_CERT_FILE = env_str(
    "TRANSCRIPT_SIGNING_CERT_FILE",
    str(VAR_DIR / "transcript-signing" / "cert.pem") if LOCAL_RUN else "",
)
TRANSCRIPT_SIGNING_KEY_FILE = env_str(
    "TRANSCRIPT_SIGNING_KEY_FILE",
    str(VAR_DIR / "transcript-signing" / "key.pem") if LOCAL_RUN else "",
)
TRANSCRIPT_SIGNING_CHAIN_FILE = env_str("TRANSCRIPT_SIGNING_CHAIN_FILE")
TRANSCRIPT_SIGNING_KEY_PASSWORD = env_str("TRANSCRIPT_SIGNING_KEY_PASSWORD")
TRANSCRIPT_SIGNING_AUTOCREATE = LOCAL_RUN

# --- WhatsApp Cloud API ------------------------------------------------------------------
# The app secret signs every webhook POST (X-Hub-Signature-256); without it every POST is refused.
WHATSAPP_APP_SECRET = env_str("WHATSAPP_APP_SECRET")
# The token Meta's subscription handshake must present (hub.verify_token).
WHATSAPP_VERIFY_TOKEN = env_str("WHATSAPP_VERIFY_TOKEN")
if LOCAL_RUN and not WHATSAPP_APP_SECRET:  # so simulate_webhook and the demo seed can sign
    WHATSAPP_APP_SECRET = _local_secret("whatsapp-app-secret")
# The Graph API (media lookups, sends); tests point it at a local server.
WHATSAPP_GRAPH_URL = env_str("WHATSAPP_GRAPH_URL", "https://graph.facebook.com/v25.0")
# The only hosts media is downloaded from (a leading dot admits subdomains).
WHATSAPP_MEDIA_HOSTS = env_list(
    "WHATSAPP_MEDIA_HOSTS", "lookaside.fbsbx.com,.fbsbx.com,.fbcdn.net,.whatsapp.net"
)
WHATSAPP_MEDIA_MAX_BYTES = env_int("WHATSAPP_MEDIA_MAX_BYTES", 100 * 1024 * 1024)
WHATSAPP_HTTP_TIMEOUT = env_int("WHATSAPP_HTTP_TIMEOUT", 60)
# Media bytes live in Django storage, content-addressed (S3 with Object Lock in production).
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Meta's bodies are at most 3 MB; anything far above is refused with 413 before it is read.
WEBHOOK_MAX_BYTES = env_int("WEBHOOK_MAX_BYTES", 8 * 1024 * 1024)
# The oldest delivery waiting to be sealed for longer than this raises the backlog alarm: the
# ingestion and home pages show it, /readyz fails and one ERROR is logged (messaging/health.py).
BACKLOG_ALARM_MINUTES = env_int("BACKLOG_ALARM_MINUTES", 5)

# --- Chat imports: phone "Export chat" files (imports/, docs/IMPORTS.md) ----------------------
# Largest upload taken, in bytes: refused while it streams in, before anything is stored.
CHAT_IMPORT_MAX_BYTES = env_int("CHAT_IMPORT_MAX_BYTES", 1024 * 1024 * 1024)
# Entries sealed per transaction: a crashed or cancelled import stops at a batch boundary.
CHAT_IMPORT_BATCH = env_int("CHAT_IMPORT_BATCH", 2000)

# --- The REST API (/api/v1/, schema at /api/schema/) ---------------------------------------
# API token (clientwindow/tokens.py) or session authentication; JSON only (the browsable API's
# pages would need inline scripts, which the Content-Security-Policy forbids); every endpoint
# needs a logged-in user.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "clientwindow.tokens.BearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON too deep, or with a NUL, is a 400 (access/boundary.py)
    "DEFAULT_PARSER_CLASSES": [
        "access.boundary.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # every error is an RFC 9457 problem (api/problems.py)
    "EXCEPTION_HANDLER": "api.problems.handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ClientWindow API",
    "DESCRIPTION": (
        "The ClientWindow WhatsApp compliance archive: conversations, messages and search;"
        " the change feed of sealed records; legal holds, retention and dispositions;"
        " evidence exports; the access and security events; health and integrity."
        " Errors are RFC 9457 problem details. docs/API.md is the guide."
    ),
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.problems",
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# --- Exports --------------------------------------------------------------------------------
# Finished export files go to the exports store (below; the filesystem at EXPORT_ROOT when
# EXPORT_STORAGE_URL is unset). A worker builds each in a temporary directory of its own (TMPDIR:
# room for the largest export) and uploads it; files are removed after EXPORT_EXPIRY_DAYS, while
# the record of the export stays.
EXPORT_ROOT = Path(env_str("EXPORT_ROOT", str(VAR_DIR / "exports")))

# --- Files outside PostgreSQL (archive/objectstore.py, deploy/README.md) ---------------------
# The records store (media; in production an S3 bucket with compliance-mode Object Lock) and
# the exports store (no lock: exports expire). Unset: the filesystem at MEDIA_ROOT and
# EXPORT_ROOT, for one machine. Credentials come from the environment (AWS_ACCESS_KEY_ID ...).
STORAGE_URL = env_str("STORAGE_URL")
EXPORT_STORAGE_URL = env_str("EXPORT_STORAGE_URL")
STORAGES["records"] = storage_options("STORAGE_URL", STORAGE_URL, "archive.objectstore.FileStore")
STORAGES["exports"] = storage_options(
    "EXPORT_STORAGE_URL", EXPORT_STORAGE_URL, "archive.objectstore.ExportFileStore"
)
if is_s3(STORAGES["records"]) and not is_s3(STORAGES["exports"]):
    raise ImproperlyConfigured(
        "STORAGE_URL is a bucket, so EXPORT_STORAGE_URL must be one too (every web node must"
        " read the exports every worker writes): a bucket or prefix without Object Lock"
    )
# A production process refuses to start unless the records store is a bucket with versioning
# and compliance-mode Object Lock (SEC 17a-4(f)); `manage.py storage check` shows why not.
STORAGE_REQUIRE_WORM = env_bool("STORAGE_REQUIRE_WORM", False)
EXPORT_EXPIRY_DAYS = env_int("EXPORT_EXPIRY_DAYS", 7)

# --- Retention and disposition (retention/) --------------------------------------------------
# A disposition of more records than this waits for a second administrator's approval.
DISPOSITION_APPROVAL_THRESHOLD = env_int("DISPOSITION_APPROVAL_THRESHOLD", 10_000)
# Records disposed of per transaction (each batch is sealed as one ledger entry, and sealing of
# new captures waits for the batch: measured 0.15 s p50 per 1,000, tests/performance).
DISPOSITION_BATCH = env_int("DISPOSITION_BATCH", 1_000)


# --- The bridge (bridge/): staff email, Slack, Teams, replies, the journal ------------------
def _email_backend(url: str) -> dict[str, Any]:
    """EMAIL_URL → Django's email settings: smtp://[user:password@]host[:port] (STARTTLS with
    ?tls=1), smtps:// (TLS from the start), file:///path, console:// or empty (nothing is sent:
    notifications wait, and check bridge.W001 says why)."""
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme in ("smtp", "smtps"):
        query = parse_qs(parts.query)
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": parts.hostname or "localhost",
            "EMAIL_PORT": parts.port or (465 if parts.scheme == "smtps" else 25),
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
            "EMAIL_USE_SSL": parts.scheme == "smtps",
            "EMAIL_USE_TLS": query.get("tls", ["0"])[0] in ("1", "true", "yes"),
        }
    if parts.scheme == "file":
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": parts.path,
        }
    if parts.scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if not url:
        return {"EMAIL_BACKEND": "bridge.mail.UnconfiguredBackend"}
    raise ImproperlyConfigured(f"EMAIL_URL: unknown scheme {parts.scheme!r}")


# Local runs write outgoing mail to var/outbox, one file per message.
EMAIL_URL = env_str("EMAIL_URL", f"file://{VAR_DIR / 'outbox'}" if LOCAL_RUN else "")
_EMAIL = _email_backend(EMAIL_URL)
EMAIL_BACKEND = _EMAIL["EMAIL_BACKEND"]
EMAIL_HOST = _EMAIL.get("EMAIL_HOST", "localhost")
EMAIL_PORT = _EMAIL.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _EMAIL.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _EMAIL.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_SSL = _EMAIL.get("EMAIL_USE_SSL", False)
EMAIL_USE_TLS = _EMAIL.get("EMAIL_USE_TLS", False)
EMAIL_FILE_PATH = _EMAIL.get("EMAIL_FILE_PATH", str(VAR_DIR / "outbox"))
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
# The journal (the firm's email archive) may use another relay; default: the same as EMAIL_URL.
JOURNAL_EMAIL_URL = env_str("JOURNAL_EMAIL_URL", EMAIL_URL)
JOURNAL_EMAIL = _email_backend(JOURNAL_EMAIL_URL)
# Notifications come from this address ("<client> via ClientWindow" <address>).
BRIDGE_FROM_ADDRESS = env_str("BRIDGE_FROM_ADDRESS", "clientwindow@localhost")
DEFAULT_FROM_EMAIL = BRIDGE_FROM_ADDRESS
SERVER_EMAIL = BRIDGE_FROM_ADDRESS
# Staff replies go to reply+<token>@BRIDGE_REPLY_DOMAIN (an MX or relay pointing at the gateway).
BRIDGE_REPLY_DOMAIN = env_str("BRIDGE_REPLY_DOMAIN", "localhost")
# Links in notifications point here (the portal's public base URL).
PORTAL_URL = env_str("PORTAL_URL", "http://127.0.0.1:8000" if LOCAL_RUN else "").rstrip("/")
# Media attached to a notification up to this many bytes in all (a portal link beyond it).
BRIDGE_ATTACHMENT_MAX_BYTES = env_int("BRIDGE_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024)
# A notification waits this long for the media of its messages to be fetched, then links to it.
BRIDGE_MEDIA_WAIT_SECONDS = env_int("BRIDGE_MEDIA_WAIT_SECONDS", 60)
# Messages from one client within this many seconds share one email (0: whatever is waiting).
BRIDGE_BURST_SECONDS = env_int("BRIDGE_BURST_SECONDS", 0)
# Notification tries before giving up (backoff doubles from 30 s to 1 h); never for the journal.
BRIDGE_MAX_ATTEMPTS = env_int("BRIDGE_MAX_ATTEMPTS", 12)
# Slack and Teams incoming-webhook hosts that may be posted to (a leading dot admits subdomains).
BRIDGE_WEBHOOK_HOSTS = env_list(
    "BRIDGE_WEBHOOK_HOSTS",
    "hooks.slack.com,.webhook.office.com,.logic.azure.com,.api.powerplatform.com",
)
# The built-in SMTP gateway for staff replies (manage.py run_mail_gateway; make run starts it).
MAIL_GATEWAY_HOST = env_str("MAIL_GATEWAY_HOST", "127.0.0.1")
MAIL_GATEWAY_PORT = env_int("MAIL_GATEWAY_PORT", 2525)
# Largest reply email accepted, in bytes (the gateway, provider webhooks and IMAP alike).
MAIL_MAX_BYTES = env_int("MAIL_MAX_BYTES", 40 * 1024 * 1024)
# The authserv-id of the firm's own inbound mail server: when set, a reply must carry its
# Authentication-Results header with dmarc=pass for the sender's domain (RFC 8601).
BRIDGE_TRUSTED_AUTHSERV_ID = env_str("BRIDGE_TRUSTED_AUTHSERV_ID")
# Unset, production refuses to run without it (bridge.E003); 1 says replies are trusted on From.
BRIDGE_ALLOW_UNAUTHENTICATED_SENDERS = env_bool("BRIDGE_ALLOW_UNAUTHENTICATED_SENDERS")
# Poll this mailbox for replies: imaps://user:password@host[:port]/FOLDER (unset: no polling).
IMAP_URL = env_str("IMAP_URL")
# Inbound-email webhooks of email providers (django-anymail, /email/inbound/<provider>/inbound/):
# served only when this "user:password" basic-auth secret is set (404 otherwise). Mailgun
# also signs its webhooks: give its signing key too when Mailgun is the provider.
ANYMAIL = {
    "WEBHOOK_SECRET": env_str("ANYMAIL_WEBHOOK_SECRET"),
    "MAILGUN_WEBHOOK_SIGNING_KEY": env_str("ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY"),
}

# --- Background work -----------------------------------------------------------------------
Q_CLUSTER = {
    "name": "clientwindow",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 1800),
    "retry": env_int("Q_TIMEOUT", 1800) + 60,
    "max_attempts": 3,
    "catch_up": False,
    # successful tasks kept for the admin: each finished task makes the monitor read them all
    # (measured: 15 ms of CPU per task at 1,000)
    "save_limit": env_int("Q_SAVE_LIMIT", 100),
    # seconds between the ORM broker's looks for queued tasks: the floor of every wake-up's delay
    "poll": float(env_str("Q_POLL", "0.2")),
}
# The queue itself: PostgreSQL (django-q2's ORM broker) unless Q_BROKER_URL names a Redis
# server, redis://[:password@]host:port/db (rediss:// for TLS). When to switch: deploy/README.md.
# Results and schedules stay in PostgreSQL either way.
Q_BROKER_URL = env_str("Q_BROKER_URL")
if Q_BROKER_URL.split("://", 1)[0] in ("redis", "rediss", "unix"):
    del Q_CLUSTER["orm"], Q_CLUSTER["poll"]  # the ORM broker wins over Redis if "orm" is set
    Q_CLUSTER["redis"] = Q_BROKER_URL
elif Q_BROKER_URL:
    raise ImproperlyConfigured(
        "Q_BROKER_URL must be redis://host:port/db (or rediss://, unix://), or unset for the "
        f"PostgreSQL broker; its scheme is {Q_BROKER_URL.split(':', 1)[0]!r}"
    )

# --- Logging: no message bodies, ever; security events on their own logger ----------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "clientwindow.security": {"level": "INFO"},
    },
}

# --- API tokens (clientwindow/tokens.py) ------------------------------------------------------
# Issued in the portal (/tokens/) for API_TOKEN_DEFAULT_DAYS unless the owner picks fewer or
# more days, never more than API_TOKEN_MAX_DAYS. After API_TOKEN_FAILURE_LIMIT refused tokens
# from one address in 10 minutes, that address gets 429 until the oldest refusal ages out.
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 30)
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 90)
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 20)

# --- People --------------------------------------------------------------------------------
# An administrator may not approve a disposition asked for by someone whose account they created,
# or to whom they gave a role or a permission, within this many days (disposition.independence).
DISPOSITION_INDEPENDENCE_DAYS = env_int("DISPOSITION_INDEPENDENCE_DAYS", 30)

# --- Accounts: login and MFA (clientwindow/accounts.py) -------------------------------------
# Sign-in by username and password through django-allauth, at /login/ and /accounts/login/;
# accounts are made by administrators (no sign-up), so no email verification either.
ACCOUNT_ADAPTER = "clientwindow.accounts.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
# No "remember me" box: the session cookie dies with the browser (Lockout and sessions).
ACCOUNT_SESSION_REMEMBER = False
# Second factors: an authenticator app (TOTP), passkeys and security keys (WebAuthn), and
# recovery codes; a passkey also signs in on its own (it is two factors in one).
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_TOTP_ISSUER = "ClientWindow"
# WebAuthn checks the browser's origin against the host the portal is reached at: https, or
# http://localhost for local runs (http://127.0.0.1 is not an origin passkeys work at).
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = False
# Who must add a second factor at their first sign-in: all, administrators or off.
MFA_REQUIRED = env_str("MFA_REQUIRED", "all")

# --- Lockout and sessions (access/lockout.py, access/sessions.py) ----------------------------
# Failed sign-ins are counted in PostgreSQL (django-axes), so every web node sees the same
# counts. Per (name typed, address): locked after LOGIN_FAILURE_LIMIT; per address: after
# LOGIN_ADDRESS_FAILURE_LIMIT; never per name alone, so nobody can lock a colleague out from
# everywhere. A lockout lasts LOGIN_COOLOFF_MINUTES; a success clears its own pair's failures.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 30)
LOGIN_COOLOFF_MINUTES = env_int("LOGIN_COOLOFF_MINUTES", 15)
AXES_HANDLER = "access.lockout.PairAndAddressHandler"
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]  # pair first (lockout.py)
AXES_COOLOFF_TIME = LOGIN_COOLOFF_MINUTES / 60  # hours
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "login"  # allauth's form
AXES_USERNAME_CALLABLE = "access.lockout.username_typed"
AXES_LOCKOUT_CALLABLE = "access.lockout.locked_out"
AXES_SENSITIVE_PARAMETERS = ["password", "code", "token"]
AXES_VERBOSE = False  # no banner at every start; lockouts are in the access log
# The client address: REMOTE_ADDR, unless the deploy sits behind proxies it trusts to set
# X-Forwarded-For (TRUSTED_PROXY_COUNT: how many of them append to it; 0: ignore the header).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "access.lockout.client_address"
# allauth's own limits live in the cache: they slow an address, and the second-factor step per
# account (whoever is there has the password); their per-name part is counted per (name,
# address) (clientwindow/accounts.py) and sits above LOGIN_FAILURE_LIMIT, so axes locks first.
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,20/5m/key"}
# Sessions: the cookie dies with the browser; idle for SESSION_IDLE_MINUTES or older than
# SESSION_MAX_HOURS, a session is signed out (access/sessions.py).
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 30)
SESSION_MAX_HOURS = env_int("SESSION_MAX_HOURS", 12)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_ENGINE = "access.session_store"  # Django's database sessions, read in one statement
SESSION_COOKIE_AGE = SESSION_MAX_HOURS * 3600
# Exports, holds, dispositions: signed in or re-authenticated within this many seconds.
ACCOUNT_REAUTHENTICATION_TIMEOUT = env_int("REAUTHENTICATION_SECONDS", 300)

# --- Single sign-on (clientwindow/sso/) -------------------------------------------------------
# OpenID Connect with the firm's identity provider (Entra ID, Okta, Google Workspace, Keycloak):
# unset OIDC_ISSUER, no "Sign in with …" button and nothing else changes. The IdP's client must
# allow the redirect URI <portal>/accounts/oidc/sso/login/callback/. Roles come from the
# OIDC_ROLES_CLAIM claim through OIDC_ROLE_MAP ("idp-group=Role,…") at every SSO sign-in.
from clientwindow.sso import config as sso_config  # noqa: E402 (pure: no Django apps)

OIDC_ISSUER = env_str("OIDC_ISSUER").rstrip("/")
OIDC_ROLES_CLAIM = env_str("OIDC_ROLES_CLAIM", "groups")
OIDC_ROLE_MAP = sso_config.role_map(env_str("OIDC_ROLE_MAP"))
SOCIALACCOUNT_PROVIDERS = sso_config.providers(
    issuer=OIDC_ISSUER,
    client_id=env_str("OIDC_CLIENT_ID"),
    secret=env_str("OIDC_CLIENT_SECRET"),
    scopes=env_str("OIDC_SCOPES", "openid profile email groups"),
    name=env_str("OIDC_NAME", "single sign-on"),
)
SOCIALACCOUNT_ADAPTER = "clientwindow.sso.adapter.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True  # SSO creates its users; local sign-up stays closed
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # never join an SSO sign-in to a local account by email
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_EMAIL_REQUIRED = False
SOCIALACCOUNT_STORE_TOKENS = False  # the IdP's access tokens are not kept
if OIDC_ISSUER:  # the browser's POST is redirected to the IdP: Chrome checks form-action then
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(
        sso_config.issuer_origin(OIDC_ISSUER)
    )
# LOCAL_LOGIN=0: passwords sign in only the BREAK_GLASS_USERS (usernames); everyone else uses SSO.
LOCAL_LOGIN = env_bool("LOCAL_LOGIN", True)
BREAK_GLASS_USERS = env_list("BREAK_GLASS_USERS")
AUTHENTICATION_BACKENDS = [
    "clientwindow.sso.backends.LocalLoginPolicy"
    if backend == "allauth.account.auth_backends.AuthenticationBackend"
    else backend
    for backend in AUTHENTICATION_BACKENDS
    if LOCAL_LOGIN or backend != "access.backends.ModelBackend"
]

# --- A shared cache --------------------------------------------------------------------------
# allauth's sign-in rate limits, the single use of a TOTP code and the SSO replay check live in
# Django's cache: per process unless CACHE_URL names a shared Redis (docs/ACCOUNTS.md).
CACHE_URL = env_str("CACHE_URL")
if CACHE_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    }
