"""Settings for vpnmerger, read from the environment through django-environ.

Nothing else in the project reads os.environ. With no environment at all the project runs on the
embedded default: a SQLite file under var/, the in-memory channel layer and Celery tasks executed
in-process. DATABASE_URL, REDIS_URL and CELERY_BROKER_URL move it onto servers.
"""

from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file beside manage.py is optional; real environment variables take precedence.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

_TRUE_WORDS = ("true", "1", "yes", "on")
_FALSE_WORDS = ("false", "0", "no", "off")
DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql", "pgsql", "mysql")


# django-environ turns an unknown boolean word into False and reports "abc" as a float error about
# an empty string. Values that need checking go through these helpers instead. They raise
# ImproperlyConfigured naming the variable, the accepted values and what was set.
def env_bool(name: str, default: bool) -> bool:
    """Read a boolean; only true/false/1/0/yes/no/on/off (any case) are accepted."""
    raw = env.str(name, default="").strip()
    if not raw:
        return default
    if raw.lower() in _TRUE_WORDS:
        return True
    if raw.lower() in _FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be one of true/false/1/0/yes/no/on/off, got {raw!r}")


def env_int(name: str, default: int, minimum: int, maximum: int | None = None, unit: str = "") -> int:
    """Read a whole number from minimum to maximum (no upper limit when maximum is None)."""
    raw = env.str(name, default="").strip()
    if not raw:
        return default
    what = f"a whole number of {unit}" if unit else "a whole number"
    limits = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name} must be {what} {limits}, got {raw!r}")
    return value


def env_seconds(
    name: str, default: float, minimum: float = 0.0, maximum: float | None = None, allow_minimum: bool = False
) -> float:
    """Read a duration in seconds above minimum (or equal to it with allow_minimum), at most maximum."""
    raw = env.str(name, default="").strip()
    if not raw:
        return default
    lower = f"of at least {minimum:g}" if allow_minimum else f"greater than {minimum:g}"
    if allow_minimum and maximum is not None:
        limits = f"from {minimum:g} to {maximum:g}"
    else:
        limits = lower + (f" and at most {maximum:g}" if maximum is not None else "")
    try:
        value = float(raw)
    except ValueError:
        value = None
    # The comparisons are written so that NaN fails them too.
    above_minimum = value is not None and (value >= minimum if allow_minimum else value > minimum)
    if not above_minimum or not (maximum is None or value <= maximum):
        raise ImproperlyConfigured(f"{name} must be a number of seconds {limits}, got {raw!r}")
    return value


def database_config(name: str, default: str) -> dict:
    """Read a database URL, checking its scheme and port before django-environ parses it."""
    raw = env.str(name, default="").strip() or default
    example = "e.g. postgres://user:password@127.0.0.1:5432/name or sqlite:////path/to/file.sqlite3"
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    if scheme not in DATABASE_SCHEMES:
        raise ImproperlyConfigured(
            f"{name} must be a URL with the scheme {', '.join(DATABASE_SCHEMES)} ({example}), got {raw!r}"
        )
    if scheme != "sqlite":
        try:
            port = urlsplit(raw).port
        except ValueError:
            port = 0
        if port == 0:
            raise ImproperlyConfigured(
                f"{name} has an invalid port: use a number from 1 to 65535 ({example}), got {raw!r}"
            )
    return env.db_url_config(raw)


DEBUG = env_bool("DEBUG", default=False)
# Set by the CI runner. Tests that need PostgreSQL, Redis or a worker fail instead of skipping
# when it is true, so a missing service cannot pass unnoticed.
CI = env_bool("CI", default=False)
# NOTE: the fallback key is only for local use; production sets SECRET_KEY, and the deploy
# checks flag the fallback.
SECRET_KEY = env.str("SECRET_KEY", default="insecure-development-key-set-SECRET_KEY-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

VAR_DIR = Path(env.str("VPNMERGER_VAR_DIR", default=str(BASE_DIR / "var")))
# The SQLite file, source cache and exports live here, so it must exist before the first query.
VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_beat",
    "merger",
    "monitoring",
    "deployments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # WhiteNoise serves /static/ under daphne too, so the ASGI server needs no separate file server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "vpnmerger.urls"

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

WSGI_APPLICATION = "vpnmerger.wsgi.application"
ASGI_APPLICATION = "vpnmerger.asgi.application"

DATABASES = {
    "default": database_config("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'vpnmerger.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a merge writes; the timeout covers short write bursts.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
LOCALE_PATHS = [BASE_DIR / "locale"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# WhiteNoise warns at start-up when the folder is missing, which it is before the first collectstatic.
STATIC_ROOT.mkdir(exist_ok=True)
# static/ contains the project's CSS and scripts, and static/vendor/ is filled by `make install` from npm.
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies without a manifest, so templates render before collectstatic has run.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Finders let WhiteNoise serve static/ directly, so pages keep their CSS and scripts with DEBUG off
# before (or without) collectstatic. Files in STATIC_ROOT still win once collectstatic has run.
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# REST API v1: session auth for the browser, token auth for scripts; every endpoint needs a user.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "vpnmerger API",
    "DESCRIPTION": "Merge proxy subscriptions, manage sources and read runs and exports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    # Runs and deployments both have a `status` field with different choices.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "merger.models.MergeRun.Status",
        "DeploymentStatusEnum": "deployments.models.Deployment.Status",
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Channels: Redis when REDIS_URL is set, otherwise the in-memory layer of the embedded default.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: with no broker configured, tasks run in-process (eager), which is the embedded default.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL or None) or None
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
# A task is acknowledged only when it finishes and is handed back to the broker when its worker
# process dies, so a killed worker's fetch or final step runs again; the tasks are idempotent.
CELERY_TASK_ACKS_LATE = True
# Several installations (or test runs) can share one broker when each has its own queue name.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per process, so a long final step does not hold fetch tasks hostage.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES", default=24 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=30 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=35 * 60)

# Merge settings. Sizes are bytes, times are seconds.
VPNMERGER = {
    # These four only seed MergeSettings (the Configuration page), so their limits are the model's.
    "FETCH_CONCURRENCY": env_int("VPNMERGER_FETCH_CONCURRENCY", default=8, minimum=1, maximum=64),
    "FETCH_TIMEOUT": env_seconds(
        "VPNMERGER_FETCH_TIMEOUT", default=15.0, minimum=1.0, maximum=300.0, allow_minimum=True
    ),
    "FETCH_RETRIES": env_int("VPNMERGER_FETCH_RETRIES", default=2, minimum=0, maximum=10),
    "FETCH_MAX_BYTES": env_int(
        "VPNMERGER_FETCH_MAX_BYTES",
        default=20 * 1024 * 1024,
        minimum=1024,
        maximum=200 * 1024 * 1024,
        unit="bytes",
    ),
    "USER_AGENT": env.str("VPNMERGER_USER_AGENT", default="vpnmerger/0.1 (subscription merger)"),
    "EXPORT_DIR": Path(env.str("VPNMERGER_EXPORT_DIR", default=str(VAR_DIR / "exports"))),
    # Background merges: a running merge whose heartbeat is older than HEARTBEAT_TIMEOUT is taken
    # as dead (its worker was killed) and marked failed; a queued merge that no worker picked up
    # within PENDING_TIMEOUT likewise. Per-source fetch tasks get FETCH_TASK_TIME_LIMIT each.
    "HEARTBEAT_TIMEOUT": env_int("VPNMERGER_HEARTBEAT_TIMEOUT", default=300, minimum=1, unit="seconds"),
    "PENDING_TIMEOUT": env_int("VPNMERGER_PENDING_TIMEOUT", default=3600, minimum=1, unit="seconds"),
    "FETCH_TASK_TIME_LIMIT": env_int(
        "VPNMERGER_FETCH_TASK_TIME_LIMIT", default=300, minimum=1, unit="seconds"
    ),
    "PROBE_BATCH_SIZE": env_int("VPNMERGER_PROBE_BATCH_SIZE", default=500, minimum=1),
    # Server probing (merger/probing.py). PROBE_ALLOW_PUBLIC off keeps every probe on loopback
    # (127.0.0.0/8, ::1) and never resolves a host name; turn it on only on a machine meant to
    # reach the servers. Success ratios cover the last PROBE_HISTORY conclusive results of a node.
    "PROBE_CONCURRENCY": env_int("VPNMERGER_PROBE_CONCURRENCY", default=200, minimum=1),
    "PROBE_TIMEOUT": env_seconds("VPNMERGER_PROBE_TIMEOUT", default=5.0),
    "PROBE_ATTEMPTS": env_int("VPNMERGER_PROBE_ATTEMPTS", default=2, minimum=1),
    "PROBE_ALLOW_PUBLIC": env_bool("VPNMERGER_PROBE_ALLOW_PUBLIC", default=False),
    "PROBE_HISTORY": env.int("VPNMERGER_PROBE_HISTORY", default=10),
    # URL test through a proxy core: the core binary (empty: v2ray, xray or sing-box from PATH),
    # nodes per core process, the URL fetched through each node and what its response must contain.
    "PROBE_CORE": env.str("VPNMERGER_PROBE_CORE", default=""),
    "PROBE_CORE_BATCH": env.int("VPNMERGER_PROBE_CORE_BATCH", default=100),
    "PROBE_TEST_URL": env.str("VPNMERGER_PROBE_TEST_URL", default="http://www.gstatic.com/generate_204"),
    "PROBE_TEST_STATUS": env.int("VPNMERGER_PROBE_TEST_STATUS", default=204),
    "PROBE_TEST_BODY": env.str("VPNMERGER_PROBE_TEST_BODY", default=""),
    # Clean-up keeps every run younger than RUN_RETENTION_DAYS and at least KEEP_RUNS runs.
    "RUN_RETENTION_DAYS": env.int("VPNMERGER_RUN_RETENTION_DAYS", default=30),
    "KEEP_RUNS": env.int("VPNMERGER_KEEP_RUNS", default=20),
    # Node score weights, e.g. VPNMERGER_SCORE_WEIGHTS="latency=0.4,success=0.4,source=0.2"; a
    # latency at or above SCORE_LATENCY_CEILING_MS (milliseconds) earns no latency points.
    "SCORE_WEIGHTS": env.dict(
        "VPNMERGER_SCORE_WEIGHTS",
        cast={"value": float},
        default={"latency": 0.4, "success": 0.4, "source": 0.2},
    ),
    "SCORE_LATENCY_CEILING_MS": env.float("VPNMERGER_SCORE_LATENCY_CEILING_MS", default=2000.0),
    # A MaxMind country or city database (.mmdb); when set, nodes whose name names no country get
    # one from their IP address. Host names are never resolved for this.
    "GEOIP_DATABASE": env.str("VPNMERGER_GEOIP_DATABASE", default=""),
}
for _key, _weight in VPNMERGER["SCORE_WEIGHTS"].items():
    if _key not in ("latency", "success", "source") or _weight < 0:
        raise ImproperlyConfigured(
            f"VPNMERGER_SCORE_WEIGHTS has {_key}={_weight}: use latency, success and source with numbers >= 0"
        )
# Base of the subscription URLs shown in the admin and printed by `manage.py profile`, such as
# https://vpn.example.org; empty means the admin uses the request's host.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")

# Monitoring: health snapshots, alerts, notifications and automated recovery. Times are seconds.
MONITORING = {
    "SNAPSHOT_INTERVAL": env.int("MONITORING_SNAPSHOT_INTERVAL", default=60),
    # Snapshots older than THIN_AFTER keep one per hour; older than RETENTION_DAYS they are deleted.
    "THIN_AFTER": env.int("MONITORING_THIN_AFTER", default=24 * 3600),
    "RETENTION_DAYS": env.int("MONITORING_RETENTION_DAYS", default=30),
    "CHECK_TIMEOUT": env.float("MONITORING_CHECK_TIMEOUT", default=2.0),
    "ALERT_EMAILS": env.list("MONITORING_ALERT_EMAILS", default=[]),
    "WEBHOOK_URL": env.str("MONITORING_WEBHOOK_URL", default=""),
    # When set, webhooks carry an HMAC-SHA256 of the body in X-Vpnmerger-Signature.
    "WEBHOOK_SECRET": env.str("MONITORING_WEBHOOK_SECRET", default=""),
    "NOTIFY_MIN_SEVERITY": env.str("MONITORING_NOTIFY_MIN_SEVERITY", default="warning"),
    # At most NOTIFY_RATE_LIMIT deliveries per channel within NOTIFY_RATE_WINDOW; the rest are recorded
    # as rate limited and not sent.
    "NOTIFY_RATE_LIMIT": env.int("MONITORING_NOTIFY_RATE_LIMIT", default=10),
    "NOTIFY_RATE_WINDOW": env.int("MONITORING_NOTIFY_RATE_WINDOW", default=3600),
    "RECOVERY_ENABLED": env.bool("MONITORING_RECOVERY_ENABLED", default=True),
    "RECOVERY_DRY_RUN": env.bool("MONITORING_RECOVERY_DRY_RUN", default=False),
    # Each action runs at most RECOVERY_MAX_ATTEMPTS times within RECOVERY_WINDOW.
    "RECOVERY_MAX_ATTEMPTS": env.int("MONITORING_RECOVERY_MAX_ATTEMPTS", default=3),
    "RECOVERY_WINDOW": env.int("MONITORING_RECOVERY_WINDOW", default=3600),
    # Circuit breaker: a source failing BREAKER_FAILURES times in a row is disabled for BREAKER_COOLDOWN.
    "BREAKER_FAILURES": env.int("MONITORING_BREAKER_FAILURES", default=5),
    "BREAKER_COOLDOWN": env.int("MONITORING_BREAKER_COOLDOWN", default=6 * 3600),
    # Disk clean-up keeps the exports of this many newest succeeded runs.
    "DISK_KEEP_EXPORTS": env.int("MONITORING_DISK_KEEP_EXPORTS", default=3),
}
# /metrics in the Prometheus text format; off unless enabled, and bearer-token protected when a token is set.
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=False)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Deployments: pre-checks, backups, apply, verify and rollback (`manage.py deploy`).
DEPLOYMENTS = {
    # Backup sets are written here, one folder per deployment; the folder is private (mode 0700)
    # because the database dump and the source and profile backup contain subscription tokens.
    "BACKUP_DIR": Path(env.str("DEPLOY_BACKUP_DIR", default=str(VAR_DIR / "backups"))),
    # Backup sets of this many newest deployments are kept; older ones lose their files and rows.
    "BACKUP_RETENTION": env.int("DEPLOY_BACKUP_RETENTION", default=5),
    # The pre-check fails when the backup folder's file system has less free space than this (MiB).
    "MIN_FREE_DISK_MB": env.int("DEPLOY_MIN_FREE_DISK_MB", default=500),
    # Warnings of `check --deploy` with these ids stop a deployment; errors always do.
    "BLOCKING_CHECKS": env.list("DEPLOY_BLOCKING_CHECKS", default=["security.W018"]),
    # Folder holding pg_dump, pg_restore and psql of the server's major version; empty uses PATH.
    "PG_BIN_DIR": env.str("DEPLOY_PG_BIN_DIR", default=""),
    # Subscriptions merged by the verification step; every server in them is on 127.x.
    "SAMPLES_DIR": Path(env.str("DEPLOY_SAMPLES_DIR", default=str(BASE_DIR / "samples"))),
    # Seconds to wait for Celery workers to reply to the pool restart broadcast.
    "WORKER_RELOAD_TIMEOUT": env.float("DEPLOY_WORKER_RELOAD_TIMEOUT", default=5.0),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Request logs name the path, and a /sub/<token> path contains a subscription's only credential.
    # The filter sits on the request loggers (so every handler, caplog too, sees the redacted
    # record) and on the console handler for records from anywhere else.
    "filters": {"redact_tokens": {"()": "merger.logfilters.RedactSubscriptionTokens"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_tokens"]}
    },
    "loggers": {
        "django.request": {"filters": ["redact_tokens"]},
        "django.channels.server": {"filters": ["redact_tokens"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
