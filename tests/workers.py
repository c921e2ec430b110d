"""Real django-q2 workers (`manage.py qcluster`) in subprocesses, sharing the test database.

Used where production ordering matters (sync mode hides it) and where a worker must be killed.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection
from django_q.conf import Conf

from tests.servers import stop_process_group

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The URL of the test database this process is using right now."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def worker_env(**extra: str) -> dict:
    """The environment that points a subprocess at the same DB, storage and provider."""
    options = settings.STORAGES["default"].get("OPTIONS", {})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "HEYGEN_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "contentstudio.settings",
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # django-q2 signs tasks with it
            "DJANGO_DEBUG": "0",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DATABASE_URL": database_url(),
            "AVATAR_PROVIDER": settings.AVATAR_PROVIDER,
            "HEYGEN_API_BASE": settings.HEYGEN_API_BASE,
            "HEYGEN_RETRY_BACKOFF_SECONDS": str(settings.HEYGEN_RETRY_BACKOFF_SECONDS),
            "VIDEO_POLL_INTERVAL_SECONDS": str(settings.VIDEO_POLL_INTERVAL_SECONDS),
            "AVATAR_DOWNLOAD_ALLOWED_HOSTS": ",".join(settings.AVATAR_DOWNLOAD_ALLOWED_HOSTS),
            "VIDEO_JOB_RETRY_BASE_SECONDS": str(settings.VIDEO_JOB_RETRY_BASE_SECONDS),
            "OFFLINE_VIDEO_WIDTH": str(settings.OFFLINE_VIDEO_WIDTH),
            "OFFLINE_VIDEO_HEIGHT": str(settings.OFFLINE_VIDEO_HEIGHT),
            "Q_WORKERS": "1",
            "Q_CLUSTER_NAME": Conf.CLUSTER_NAME,  # the queue this test process enqueues to
            "VIDEO_MAX_CONCURRENT_RENDERS": str(settings.VIDEO_MAX_CONCURRENT_RENDERS),
            "VIDEO_JOB_LEASE_SECONDS": str(settings.VIDEO_JOB_LEASE_SECONDS),
            "VIDEO_JOB_MAX_ATTEMPTS": str(settings.VIDEO_JOB_MAX_ATTEMPTS),
        }
    )
    if settings.HEYGEN_API_KEY:
        env["HEYGEN_API_KEY"] = settings.HEYGEN_API_KEY
    if settings.STORAGES["default"]["BACKEND"].endswith("SupabaseStorage"):
        env.update(
            {
                "SUPABASE_URL": options["supabase_url"],
                "SUPABASE_S3_ENDPOINT": options["endpoint_url"],
                "SUPABASE_S3_REGION": options["region_name"],
                "SUPABASE_S3_ACCESS_KEY_ID": options["access_key"],
                "SUPABASE_S3_SECRET_ACCESS_KEY": options["secret_key"],
                "SUPABASE_STORAGE_BUCKET": options["bucket_name"],
                "SUPABASE_BUCKET_PUBLIC": "1" if options.get("public_bucket", True) else "0",
                "SUPABASE_S3_CONNECT_TIMEOUT_SECONDS": str(
                    settings.SUPABASE_S3_CONNECT_TIMEOUT_SECONDS
                ),
                "SUPABASE_S3_READ_TIMEOUT_SECONDS": str(settings.SUPABASE_S3_READ_TIMEOUT_SECONDS),
            }
        )
    else:
        env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    env.update(extra)
    return env


class Worker:
    """One `manage.py qcluster` process group (or another long-running command)."""

    command: tuple[str, ...] = ("qcluster",)

    def __init__(self, **extra_env: str):
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *self.command],
            cwd=ROOT,
            env=worker_env(**extra_env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so a kill reaches every child
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole cluster: no handler, no cleanup, like an OOM kill."""
        if self.alive:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM to the main process only (see `stop_process_group`)."""
        if self.alive:
            self.process.terminate()

    def stop(self) -> None:
        stop_process_group(self.process)


def stop_all(*processes: Worker) -> None:
    """Stop several at once (each stop waits for its own)."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.stop()


class Engine(Worker):
    """`manage.py run_video_engine`: the sweep that submits, checks renders and wakes copies."""

    command = ("run_video_engine", "--tick", "0.5")


def wait_until(predicate, *, timeout: float, interval: float = 0.2, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout}s")
