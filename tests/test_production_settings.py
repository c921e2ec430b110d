"""Production settings from the environment: WhiteNoise with hashed, compressed static files
outside debug (plain files in debug), the cookie flag for loopback checks, and a Procfile
that honcho accepts as is."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'static': s.STORAGES['staticfiles']['BACKEND'], "
    "'middleware': s.MIDDLEWARE, 'static_root': str(s.STATIC_ROOT), "
    "'session_secure': s.SESSION_COOKIE_SECURE, 'csrf_secure': s.CSRF_COOKIE_SECURE}))"
)
MANIFEST = "whitenoise.storage.CompressedManifestStaticFilesStorage"


def _settings_with(env: dict) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STATIC_"))}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "contentstudio.settings",
             "DJANGO_SECRET_KEY": "probe-secret-key-0123456789-0123456789-0123456789", **env},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def test_outside_debug_static_files_get_hashed_compressed_names_served_by_whitenoise():
    found = _settings_with({"DJANGO_DEBUG": "false", "STATIC_ROOT": "/srv/static"})
    assert found["static"] == MANIFEST
    assert found["static_root"] == "/srv/static"
    security = found["middleware"].index("django.middleware.security.SecurityMiddleware")
    assert found["middleware"][security + 1] == "whitenoise.middleware.WhiteNoiseMiddleware"
    assert found["session_secure"] is True and found["csrf_secure"] is True


def test_debug_keeps_plain_static_files_so_nothing_needs_collecting():
    found = _settings_with({"DJANGO_DEBUG": "1"})
    assert found["static"] == "django.contrib.staticfiles.storage.StaticFilesStorage"
    assert found["static_root"] == str(ROOT / "staticfiles")


def test_secure_cookies_can_be_relaxed_for_a_loopback_check_only_by_name():
    found = _settings_with({"DJANGO_DEBUG": "false", "DJANGO_SECURE_COOKIES": "0"})
    assert found["session_secure"] is False and found["csrf_secure"] is False
    assert found["static"] == MANIFEST


def test_honcho_accepts_the_procfile_and_it_names_the_three_processes():
    honcho = Path(sys.executable).parent / "honcho"
    result = subprocess.run([str(honcho), "check"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Valid procfile detected (web, worker, engine)" in result.stderr + result.stdout
    processes = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert processes["web"].startswith("gunicorn contentstudio.wsgi --bind 0.0.0.0:${PORT:-8000}")
    assert processes["worker"] == "python manage.py qcluster"
    assert processes["engine"] == "python manage.py run_video_engine"
