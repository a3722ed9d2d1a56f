"""Settings, all from the environment.

Embedded default (nothing set): SQLite in the project folder, DEBUG off, a secret key generated once
into `var/secret_key`. Production: `DATABASE_URL` (PostgreSQL), `SECRET_KEY`, `ALLOWED_HOSTS`, and
HTTPS on (`HTTPS` defaults to on whenever `DEBUG` is off, so `manage.py check --deploy` is clean);
a local plain-HTTP server sets `HTTPS=0`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ICM_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"environment variable {name}={value!r} is not a boolean (use 1/0, true/false)")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def env_list(name: str) -> list[str]:
    """A comma-separated setting, its items stripped, empty ones dropped."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    # Embedded mode: one random key per installation, kept so sessions survive a restart.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "webapp.accounts",
    "webapp.datasets",
    "webapp.runs",
    "webapp.review",
    "webapp.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a signed-in user unless it opts out; the API answers 401/403 itself.
    "webapp.accounts.middleware.LoginRequiredPagesMiddleware",
    "webapp.accounts.middleware.MethodNotAllowedPageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Refuses an oversized upload from its Content-Length; it runs before any view code (CSRF's
    # process_view included) reads the body.
    "webapp.accounts.limits.UploadSizeLimitMiddleware",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"
# Threads per web process serving pages and the API (webapp/asgi.py); websockets are served beside them.
HTTP_THREADS = env_int("HTTP_THREADS", 8)

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded worker thread and the web server write concurrently: wait instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    # A deferred transaction that reads and then writes (a run's outcome, written while its heartbeat thread
    # writes too) cannot wait for the lock: SQLite fails its upgrade at once with "database is locked".
    # Transactions that take the write lock when they begin wait for it like any other write.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    # Tests against a live server need a file too: Django's default in-memory test database is shared
    # between threads through SQLite's shared cache, whose table locks fail at once instead of waiting
    # (a browser test's read during the server's write raised "database table is locked").
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", str(VAR_DIR / "test_db.sqlite3"))
elif env_bool("DB_POOL", False):
    # Web processes: without a pool, every request opens a PostgreSQL connection (a server process forked
    # for each). A pooled connection is checked before it is handed out, so a restarted database costs a
    # reconnect, not a failed request. Room for every HTTP thread and the websocket consumers' reads.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1,
                                                              "max_size": env_int("DB_POOL_MAX", HTTP_THREADS + 4),
                                                              "timeout": 10}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # with a pool: Django passes psycopg's check_connection
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def redis_channel_layers(url: str) -> dict:
    # A consumer waits for messages with a 5 s blocking pop; redis-py 8's default 5 s socket timeout races
    # it and tore down every idle websocket (channels_redis issue 422). The read timeout must outlast it.
    return {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                        "CONFIG": {"hosts": [{"address": url, "socket_timeout": 30}]}}}


def redis_caches(url: str) -> dict:
    # Shared by every web process, so the sign-in rate limit counts across them; one connection pool per
    # process (webapp/cache.py).
    return {"default": {"BACKEND": "webapp.cache.SharedRedisCache", "LOCATION": url, "KEY_PREFIX": "icm"}}


REDIS_URL = os.environ.get("REDIS_URL") or None
if REDIS_URL:
    CHANNEL_LAYERS = redis_channel_layers(REDIS_URL)
    CACHES = redis_caches(REDIS_URL)
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTHENTICATION_BACKENDS = ["webapp.accounts.backends.CaseInsensitiveModelBackend"]
# Sign-in: attempts per client address (throttles.LoginThrottle, 10 a minute) and, per account, this many wrong
# passwords within ICM_LOGIN_LOCKOUT_S seconds make the account wait out the rest of that window.
ICM_LOGIN_FAILURES = env_int("ICM_LOGIN_FAILURES", 10)
ICM_LOGIN_LOCKOUT_S = env_int("ICM_LOGIN_LOCKOUT_S", 900)
# Days an invitation link works, unless used or revoked first.
ICM_INVITATION_DAYS = env_int("ICM_INVITATION_DAYS", 7)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "datasets:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns at start-up when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the app's static folders too, so a fresh checkout works before collectstatic.
WHITENOISE_USE_FINDERS = True

# Uploads: a dataset or label-set file may be at most ICM_MAX_UPLOAD_MB megabytes and ICM_MAX_ROWS rows.
ICM_MAX_UPLOAD_BYTES = env_int("ICM_MAX_UPLOAD_MB", 50) * 1024 * 1024
ICM_MAX_ROWS = env_int("ICM_MAX_ROWS", 200_000)
# Upload previews waiting for their owner's confirmation hold the whole file: at most this many per user (the
# oldest go first), each kept at most this many hours.
ICM_MAX_STAGED_UPLOADS = env_int("ICM_MAX_STAGED_UPLOADS", 3)
ICM_STAGED_UPLOAD_HOURS = env_int("ICM_STAGED_UPLOAD_HOURS", 24)
# Bounded work (docs/reliability.md): a run's search iterations per batch, the examples it labels, the seeds
# of one request, and the runs one user may have queued or running at once.
ICM_MAX_ITERATIONS = env_int("ICM_MAX_ITERATIONS", 10_000)
ICM_MAX_RUN_EXAMPLES = env_int("ICM_MAX_RUN_EXAMPLES", 20_000)
ICM_MAX_SEEDS = env_int("ICM_MAX_SEEDS", 10)
ICM_MAX_ACTIVE_RUNS = env_int("ICM_MAX_ACTIVE_RUNS", 30)
# Files larger than this go to a temporary file while uploading instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Background runs. With REDIS_URL, Celery workers on Redis execute them; without, a thread in the web
# server does (embedded mode). Either way the same run function checkpoints to the database.
ICM_RUN_DISPATCH = os.environ.get("ICM_RUN_DISPATCH") or ("celery" if REDIS_URL else "embedded")
ICM_CHECKPOINT_S = float(os.environ.get("ICM_CHECKPOINT_S", "5"))  # at most this long between checkpoints
ICM_PROGRESS_S = float(os.environ.get("ICM_PROGRESS_S", "0.5"))  # progress snapshots to the database
ICM_RUN_LEASE_S = float(os.environ.get("ICM_RUN_LEASE_S", "60"))  # a run whose heartbeat is older is taken over
ICM_WS_MIN_INTERVAL_S = float(os.environ.get("ICM_WS_MIN_INTERVAL_S", "0.25"))  # websocket throttle
# Model servers and model files are the operator's choice: a run request picks among these and nothing else
# (webapp/runs/backends.py, docs/reliability.md).
ICM_OPENAI_BASE_URL = os.environ.get("ICM_OPENAI_BASE_URL", "")
ICM_OPENAI_MODEL = os.environ.get("ICM_OPENAI_MODEL", "")  # the served model's name, when a run names none
# Further OpenAI-compatible servers and served model names a run may choose (ICM_OPENAI_BASE_URL and
# ICM_OPENAI_MODEL are always among them).
ICM_OPENAI_BASE_URLS = env_list("ICM_OPENAI_BASE_URLS")
ICM_OPENAI_MODELS = env_list("ICM_OPENAI_MODELS")
# Model names or folders the transformers and vLLM backends may load besides the packaged model.
ICM_ALLOWED_MODELS = env_list("ICM_ALLOWED_MODELS")
# The backends a run may use. Empty: transformers, openai where a server is configured, and every plugin's.
ICM_ALLOWED_BACKENDS = env_list("ICM_ALLOWED_BACKENDS")
# Modules that register model backends of one's own when imported (icm_engine.backends.register_backend).
ICM_BACKEND_PLUGINS = env_list("ICM_BACKEND_PLUGINS")

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Our own heartbeat and recovery, not the broker's redelivery, take over a run whose worker died, so the
# visibility timeout only has to outlive any run (a redelivered duplicate finds the run owned or done).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7 * 24 * 3600}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "webapp.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # `?format=jsonl|csv` on export endpoints is ours, not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
    "EXCEPTION_HANDLER": "webapp.api.errors.exception_handler",
    # Proxies in front of the server that append the client's address to X-Forwarded-For. 0: the address is
    # the connection's own, whatever headers a client sends (webapp/accounts/throttles.py).
    "NUM_PROXIES": env_int("ICM_TRUSTED_PROXIES", 0),
    "DEFAULT_PARSER_CLASSES": [
        "webapp.api.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ICM Studio API",
    "DESCRIPTION": "Datasets, label sets, import and export for Internal Coherence Maximization.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation's shared refusals (400, 401, 403, 404, 413 on uploads, 429 on sign-in) in the schema.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "webapp.api.schema_hooks.document_refusals"],
    # <id:name> (webapp.ids): a database id, an integer from 1 to 2**63 - 1.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "format": "int64", "minimum": 1,
                                        "maximum": 2**63 - 1}},
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "webapp.datasets.models.Role",
        "LabelSetKindEnum": "webapp.datasets.models.LabelSetKind",
        "LabelSetSourceEnum": "webapp.datasets.models.LabelSetSource",
        "InvitationStatusEnum": ["open", "accepted", "revoked", "expired"],
        "RunStatusEnum": "webapp.runs.models.RunStatus",
    },
}

HTTPS = env_bool("HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env_bool("BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): scripts only from this site's own files (htmx is vendored, and no page
# has an inline script or handler), so text from a dataset can never run as script. Inline styles are allowed
# for the API's documentation pages (Redoc and DRF's browsable API set them); the websocket is 'self'.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # A permission refusal is an answer, not a fault: one line, without the traceback Django attaches.
    "filters": {"one_line_refusals": {"()": "webapp.log_filters.OneLineRefusals"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["one_line_refusals"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
