"""The embedded default needs nothing but the Python packages."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], "
    "'storage': s.STORAGES['default']['BACKEND'], 'provider': s.AVATAR_PROVIDER, "
    "'endpoint': s.SUPABASE_S3_ENDPOINT, 'bucket': s.SUPABASE_STORAGE_BUCKET}))"
)


def _settings_with(env: dict) -> dict:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SUPABASE_", "HEYGEN_", "AVATAR_", "DATABASE_URL"))
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "contentstudio.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_embedded_default_is_sqlite_local_files_and_offline_provider():
    found = _settings_with({})
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["storage"] == "contentstudio.storage.LocalMediaStorage"
    assert found["provider"] == "local"


def test_supabase_and_heygen_switch_on_from_the_environment():
    found = _settings_with(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/contentstudio",
            "SUPABASE_URL": "https://abcd.supabase.co",
            "SUPABASE_S3_ACCESS_KEY_ID": "id",
            "SUPABASE_S3_SECRET_ACCESS_KEY": "secret",
            "HEYGEN_API_KEY": "hg-key",
        }
    )
    assert found["engine"] == "django.db.backends.postgresql"
    assert found["storage"] == "contentstudio.storage.SupabaseStorage"
    assert found["endpoint"] == "https://abcd.supabase.co/storage/v1/s3"
    assert found["bucket"] == "media"
    assert found["provider"] == "heygen"
