"""Content Studio settings, read from the environment once, here.

With nothing set, the studio runs on its embedded default: a SQLite file, local file
storage and the offline video provider. See README.md for the variables.
"""

import os
import secrets
import tempfile
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if not raw:
        return default
    return raw.lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: list[str]) -> list[str]:
    raw = _env(name)
    if not raw:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def _env_renamed(name: str, old_name: str, default: str) -> str:
    """A setting renamed to a provider-neutral name; the old name still reads, with a warning."""
    if os.environ.get(name, "").strip():
        return _env(name, default)
    if os.environ.get(old_name, "").strip():
        warnings.warn(f"{old_name} is deprecated; set {name} instead.", DeprecationWarning,
                      stacklevel=2)  # fmt: skip
        return _env(old_name, default)
    return default


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    return int(raw) if raw else default


# --- Core -----------------------------------------------------------------------------------
DEBUG = _env_bool("DJANGO_DEBUG", False)


def _local_secret_key() -> str:
    """Without DJANGO_SECRET_KEY: a random key kept in a private file beside the project, so
    one machine (studio, worker, commands) shares it. Multi-host deployments set the env var."""
    path = Path(_env("DJANGO_SECRET_KEY_FILE") or BASE_DIR / ".secret_key")
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key


SECRET_KEY = _env("DJANGO_SECRET_KEY") or _local_secret_key()
ALLOWED_HOSTS = _env_list(
    "DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = _env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# Outside debug: HTTPS only, secure cookies, HSTS. Behind a TLS-terminating proxy set
# DJANGO_SECURE_PROXY_SSL_HEADER=1.
SECURE_SSL_REDIRECT = _env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# DJANGO_SECURE_COOKIES=0 sends the session and CSRF cookies over plain HTTP too (a loopback
# check of a production build); never on a public host.
SESSION_COOKIE_SECURE = _env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = 0 if DEBUG else _env_int("DJANGO_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if _env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "studio",  # first: its admin templates (index, storage health) override the admin's own
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "videostore",
    "topics",
    "avatars",
]
# Test and demo tools (the fake HeyGen server and its command): debug or DJANGO_DEV_TOOLS=1.
DEV_TOOLS = _env_bool("DJANGO_DEV_TOOLS", DEBUG)
if DEV_TOOLS:
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from the web process (hashed names, compressed, cached for a year).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "contentstudio.urls"
WSGI_APPLICATION = "contentstudio.wsgi.application"
ASGI_APPLICATION = "contentstudio.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL (postgres://user@host:5432/name) in production; a SQLite file otherwise.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=_env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The job worker and the web server share the file: wait for locks instead of failing.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not memory, for the test database: job worker processes in tests share it.
    # Per process, so concurrent test runs in one checkout never share a file.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"contentstudio-test-{os.getpid()}.sqlite3")
    }
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "studio:topic-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Files ----------------------------------------------------------------------------------
STATIC_URL = "static/"
# `manage.py collectstatic --noinput` copies the static files here; WhiteNoise serves them.
STATIC_ROOT = Path(_env("STATIC_ROOT") or BASE_DIR / "staticfiles")
# Outside debug: hashed, compressed names from collectstatic's manifest (long-cached). Debug
# and tests that never collect use the plain storage. DJANGO_STATIC_MANIFEST overrides.
STATIC_MANIFEST = _env_bool("DJANGO_STATIC_MANIFEST", not DEBUG)
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(_env("MEDIA_ROOT") or BASE_DIR / "media")
# The only files the studio accepts are scripts files (1 MiB): each is kept in memory up to its
# cap plus one byte and the rest of a larger body is dropped as it streams in, never spooled
# to disk (studio/uploads.py); a form has one file field, so a post needs no more than a few.
FILE_UPLOAD_HANDLERS = ["studio.uploads.CappedMemoryUploadHandler"]
DATA_UPLOAD_MAX_NUMBER_FILES = 4

SUPABASE_URL = _env("SUPABASE_URL").rstrip("/")
SUPABASE_S3_ACCESS_KEY_ID = _env("SUPABASE_S3_ACCESS_KEY_ID")
SUPABASE_S3_SECRET_ACCESS_KEY = _env("SUPABASE_S3_SECRET_ACCESS_KEY")
SUPABASE_S3_ENDPOINT = _env("SUPABASE_S3_ENDPOINT") or (
    f"{SUPABASE_URL}/storage/v1/s3" if SUPABASE_URL else ""
)
SUPABASE_S3_REGION = _env("SUPABASE_S3_REGION", "us-east-1")
SUPABASE_STORAGE_BUCKET = _env("SUPABASE_STORAGE_BUCKET", "media")
SUPABASE_BUCKET_PUBLIC = _env_bool("SUPABASE_BUCKET_PUBLIC", True)
SUPABASE_STORAGE_ENABLED = bool(SUPABASE_S3_ACCESS_KEY_ID and SUPABASE_S3_SECRET_ACCESS_KEY)
# Other buckets of the same endpoint (rows left in an earlier bucket, a move's target): which
# serve public URLs and which signed ones; a bucket in neither list is like the configured one.
SUPABASE_PUBLIC_BUCKETS = _env_list("SUPABASE_PUBLIC_BUCKETS", [])
SUPABASE_PRIVATE_BUCKETS = _env_list("SUPABASE_PRIVATE_BUCKETS", [])
if "local" in {SUPABASE_STORAGE_BUCKET, *SUPABASE_PUBLIC_BUCKETS, *SUPABASE_PRIVATE_BUCKETS}:
    # A row's location is a bucket's name or "local" (files under MEDIA_ROOT): never both.
    raise ImproperlyConfigured("No bucket may be named 'local': it names local file storage.")
# How long the storage client waits to connect, and for each answer (a large upload's
# completion waits longer, in proportion to its size: contentstudio/storage.py).
SUPABASE_S3_CONNECT_TIMEOUT_SECONDS = float(_env("SUPABASE_S3_CONNECT_TIMEOUT_SECONDS", "10"))
SUPABASE_S3_READ_TIMEOUT_SECONDS = float(_env("SUPABASE_S3_READ_TIMEOUT_SECONDS", "60"))
# A video of known length up to this size goes up in one streamed PUT; larger ones in parts.
SUPABASE_S3_SINGLE_PUT_MAX_BYTES = _env_int("SUPABASE_S3_SINGLE_PUT_MAX_BYTES", 256 * 1024**2)
# Signed URLs must outlive a viewing session: players seek with range requests long after load.
SIGNED_URL_EXPIRES_SECONDS = _env_int("SIGNED_URL_EXPIRES_SECONDS", 6 * 3600)

if SUPABASE_STORAGE_ENABLED:
    if not SUPABASE_URL or not SUPABASE_S3_ENDPOINT:
        raise ImproperlyConfigured("SUPABASE_URL must be set when Supabase storage is enabled.")
    _default_storage = {
        "BACKEND": "contentstudio.storage.SupabaseStorage",
        "OPTIONS": {
            "bucket_name": SUPABASE_STORAGE_BUCKET,
            "endpoint_url": SUPABASE_S3_ENDPOINT,
            "region_name": SUPABASE_S3_REGION,
            "access_key": SUPABASE_S3_ACCESS_KEY_ID,
            "secret_key": SUPABASE_S3_SECRET_ACCESS_KEY,
            "supabase_url": SUPABASE_URL,
            "public_bucket": SUPABASE_BUCKET_PUBLIC,
            "querystring_expire": SIGNED_URL_EXPIRES_SECONDS,
        },
    }
else:
    _default_storage = {
        "BACKEND": "contentstudio.storage.LocalMediaStorage",
        "OPTIONS": {"public": SUPABASE_BUCKET_PUBLIC},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Avatar video providers -----------------------------------------------------------------
HEYGEN_API_KEY = _env("HEYGEN_API_KEY")
HEYGEN_API_BASE = _env("HEYGEN_API_BASE", "https://api.heygen.com").rstrip("/")
HEYGEN_WEBHOOK_SECRET = _env("HEYGEN_WEBHOOK_SECRET")
HEYGEN_DEFAULT_AVATAR_ID = _env("HEYGEN_DEFAULT_AVATAR_ID", "Daisy-inskirt-20220818")
HEYGEN_DEFAULT_VOICE_ID = _env("HEYGEN_DEFAULT_VOICE_ID", "2d5b0e6cf36f460aa7fc47e3eee4ba54")
HEYGEN_REQUEST_TIMEOUT_SECONDS = float(_env("HEYGEN_REQUEST_TIMEOUT_SECONDS", "30"))
HEYGEN_RENDER_DEADLINE_SECONDS = float(_env("HEYGEN_RENDER_DEADLINE_SECONDS", "1800"))
# A failed HeyGen call is retried at once, then after this long, doubled each time (urllib3's
# backoff factor); the tests' fake HeyGen answers on loopback and needs no pause.
HEYGEN_RETRY_BACKOFF_SECONDS = float(_env("HEYGEN_RETRY_BACKOFF_SECONDS", "0.5"))
AVATAR_PROVIDER = _env("AVATAR_PROVIDER") or ("heygen" if HEYGEN_API_KEY else "local")
if AVATAR_PROVIDER not in {"heygen", "local"}:
    raise ImproperlyConfigured("AVATAR_PROVIDER must be 'heygen' or 'local'.")
if AVATAR_PROVIDER == "heygen" and not HEYGEN_API_KEY:
    raise ImproperlyConfigured("AVATAR_PROVIDER=heygen needs HEYGEN_API_KEY.")

# Hosts the rendered video may be downloaded from. A leading dot matches subdomains.
# Loopback is allowed only when listed explicitly (tests, demos with the fake server).
AVATAR_DOWNLOAD_ALLOWED_HOSTS = _env_list(
    "AVATAR_DOWNLOAD_ALLOWED_HOSTS", [".heygen.ai", ".heygen.com"]
)
AVATAR_VIDEO_MAX_BYTES = _env_int("AVATAR_VIDEO_MAX_BYTES", 2 * 1024**3)
AVATAR_VIDEO_PREFIX = "avatar_videos/"
AVATAR_SCRIPT_MAX_CHARS = _env_int("AVATAR_SCRIPT_MAX_CHARS", 5000)
# The offline provider: real MP4s rendered locally with ffmpeg.
OFFLINE_VIDEO_WIDTH = _env_int("OFFLINE_VIDEO_WIDTH", 1280)
OFFLINE_VIDEO_HEIGHT = _env_int("OFFLINE_VIDEO_HEIGHT", 720)
OFFLINE_VIDEO_MAX_SECONDS = _env_int("OFFLINE_VIDEO_MAX_SECONDS", 20)

# Objects younger than this may belong to an upload still in flight: never swept.
RECONCILE_GRACE_SECONDS = _env_int("RECONCILE_GRACE_SECONDS", 6 * 3600)
# The job engine: short steps, each holding its job under a lease that it renews while it
# works; a job whose lease expired belongs to a dead worker and is taken over.
VIDEO_JOB_LEASE_SECONDS = _env_int("VIDEO_JOB_LEASE_SECONDS", 60)
VIDEO_JOB_MAX_ATTEMPTS = _env_int("VIDEO_JOB_MAX_ATTEMPTS", 3)
VIDEO_JOB_RETRY_BASE_SECONDS = _env_int("VIDEO_JOB_RETRY_BASE_SECONDS", 30)
# Renders in progress at the provider at once (HeyGen plans cap concurrent renders); the
# other jobs wait as queued rows and are submitted oldest first as slots free up. The
# engine's settings are provider-neutral; the old HEYGEN_* names still read (deprecated).
VIDEO_MAX_CONCURRENT_RENDERS = int(
    _env_renamed("VIDEO_MAX_CONCURRENT_RENDERS", "HEYGEN_MAX_CONCURRENT_RENDERS", "5")
)
# The first render check after a submit, then x1.5 each check up to the max.
VIDEO_POLL_INTERVAL_SECONDS = float(
    _env_renamed("VIDEO_POLL_INTERVAL_SECONDS", "HEYGEN_POLL_INTERVAL_SECONDS", "10")
)
VIDEO_POLL_MAX_INTERVAL_SECONDS = float(
    _env_renamed("VIDEO_POLL_MAX_INTERVAL_SECONDS", "HEYGEN_POLL_MAX_INTERVAL_SECONDS", "60")
)
# Provider calls of one sweep (creates, status checks) that overlap; the render cap still
# holds exactly (slots are claimed before any call).
VIDEO_PROVIDER_CONCURRENCY = _env_int("VIDEO_PROVIDER_CONCURRENCY", 8)
# A create whose outcome is unknown (timeout on our side) is looked up in the provider's list
# this long after the call ended (the provider may still be accepting it).
VIDEO_SUBMIT_LOOKUP_DELAY_SECONDS = float(_env("VIDEO_SUBMIT_LOOKUP_DELAY_SECONDS", "10"))
# How often `manage.py run_video_engine` looks for due work (render checks, copies to start).
VIDEO_ENGINE_TICK_SECONDS = float(_env("VIDEO_ENGINE_TICK_SECONDS", "2"))
# Threads of run_video_engine for copies the job workers did not take (a dead holder's, or a
# wake-up untaken for a lease: the workers are stalled or not running). Enough that the copies
# of a whole cluster's dead workers start at once rather than queue (a copy mostly waits on
# the network; its memory is bounded by the upload's part size).
VIDEO_ENGINE_COPY_THREADS = _env_int("VIDEO_ENGINE_COPY_THREADS", 8)
# /healthz warns when no engine swept for this long, and when no qcluster worker recorded its
# heartbeat (at start, then every minute from django-q2's schedule) for this long.
VIDEO_ENGINE_STALE_SECONDS = _env_int("VIDEO_ENGINE_STALE_SECONDS", 60)
Q_WORKERS_STALE_SECONDS = _env_int("Q_WORKERS_STALE_SECONDS", 180)

# --- Jobs (django-q2) -----------------------------------------------------------------------
# The ORM broker on the database by default (any number of qcluster processes on any number
# of hosts); Q_BROKER_URL=redis://host:6379/0 for the Redis broker. Job state stays in the
# database either way. Tasks are short steps; timeout < retry, so the broker never hands a
# running task to a second worker.
Q_BROKER_URL = _env("Q_BROKER_URL")
Q_CLUSTER = {
    "name": "contentstudio",
    # The queue the cluster takes tasks from: sites (or test runs) sharing one Redis use
    # different names. Tasks are signed with "name", the same for every cluster of the site.
    "cluster_name": _env("Q_CLUSTER_NAME", "contentstudio"),
    "workers": _env_int("Q_WORKERS", 2),
    "timeout": _env_int("Q_TIMEOUT_SECONDS", 2400),
    "retry": _env_int("Q_RETRY_SECONDS", 2700),
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    # The ORM broker's poll: the wait between "a copy is woken" and "a worker starts it".
    "poll": float(_env("Q_POLL_SECONDS", "0.2")),
    # Successful results are saved unpruned; the schedule keeps the newest Q_SUCCESS_KEPT
    # (avatars.task_results: django-q2's own pruning locks every saved success per task).
    "save_limit": 0,
    # django-q2's own "processing ... / Processed ..." lines; our steps log their facts.
    "log_level": _env("Q_LOG_LEVEL", "WARNING"),
}
# Successful task results kept for the admin's "Successful tasks" (failures are all kept).
Q_SUCCESS_KEPT = _env_int("Q_SUCCESS_KEPT", 500)
if Q_BROKER_URL.startswith(("redis://", "rediss://")):
    Q_CLUSTER["redis"] = Q_BROKER_URL
elif Q_BROKER_URL:
    raise ImproperlyConfigured("Q_BROKER_URL must be a redis:// URL (or unset for the ORM broker).")
else:
    Q_CLUSTER["orm"] = "default"
if _env_bool("Q_SYNC", False):
    Q_CLUSTER["sync"] = True

# --- Logging: to stderr, never secrets ------------------------------------------------------
# LOG_FORMAT=plain (default): one readable line; json: one JSON object per line for a log
# collector, with the `extra=` fields (storage_path, job_id, ...) as keys of their own.
LOG_FORMAT = _env("LOG_FORMAT", "plain").lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["stderr"], "level": _env("LOG_LEVEL", "INFO")},
    "loggers": {
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "django_q": {"level": "WARNING"},
    },
}
