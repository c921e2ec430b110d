"""Log lines carry their facts in the message, never secrets; LOG_FORMAT=json gives JSON lines."""

import json
import logging
import os
import subprocess
import sys
from logging.config import DictConfigurator

import pytest
from django.conf import settings as django_settings

from tests.servers import TEST_SECRET_KEY
from videostore.ledger import delete_now, register_pending_upload
from videostore.models import UploadLedgerEntry

HEYGEN_KEY = "hg-live-key-never-logged-0123"


def formatter(name: str) -> logging.Formatter:
    """The formatter LOGGING names, built the way dictConfig builds it."""
    config = django_settings.LOGGING
    return DictConfigurator(config).configure_formatter(dict(config["formatters"][name]))


@pytest.mark.django_db(transaction=True)
def test_a_failed_delete_names_the_storage_path_and_no_secret(storage_link, settings, caplog):
    settings.HEYGEN_API_KEY = HEYGEN_KEY
    storage_path = f"{settings.AVATAR_VIDEO_PREFIX}avatar_log_check_0000.mp4"
    register_pending_upload(storage_path, reason="test")
    storage_link.cut()
    caplog.set_level(logging.DEBUG)

    assert delete_now(storage_path) is False

    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    rendered = [formatter("plain").format(r) for r in failures]
    assert any(storage_path in line and "unavailable" in line for line in rendered), rendered
    everything = "\n".join(
        f"{formatter('plain').format(r)} {formatter('json').format(r)}" for r in caplog.records
    )
    for secret in (TEST_SECRET_KEY, HEYGEN_KEY, "X-Amz-Signature", "Signature="):
        assert secret not in everything
    assert UploadLedgerEntry.objects.get(storage_path=storage_path).attempts == 1


def test_json_formatter_renders_one_object_per_line_with_the_extra_fields():
    record = logging.LogRecord(
        "videostore.ledger", logging.WARNING, __file__, 1,
        "delete of %s failed: %s", ("avatar_videos/a.mp4", "could not connect"), None,
    )  # fmt: skip
    record.storage_path = "avatar_videos/a.mp4"
    line = formatter("json").format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "delete of avatar_videos/a.mp4 failed: could not connect"
    assert parsed["storage_path"] == "avatar_videos/a.mp4"
    assert parsed["levelname"] == "WARNING" and parsed["name"] == "videostore.ledger"


def test_log_format_json_makes_every_stderr_line_json():
    script = (
        "import logging, django; django.setup();"
        "log = logging.getLogger('videostore.storage');"
        "log.warning('upload of %s failed: %s', 'avatar_videos/b.mp4', 'multi\\nline',"
        " extra={'storage_path': 'avatar_videos/b.mp4'});"
        "log.info('video stored at %s (%d bytes)', 'avatar_videos/c.mp4', 42)"
    )
    env = {**os.environ, "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "contentstudio.settings"}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert [line["message"] for line in lines] == [
        "upload of avatar_videos/b.mp4 failed: multi\nline",
        "video stored at avatar_videos/c.mp4 (42 bytes)",
    ]
    assert lines[0]["storage_path"] == "avatar_videos/b.mp4"


def test_an_unknown_log_format_is_refused():
    env = {**os.environ, "LOG_FORMAT": "xml", "DJANGO_SETTINGS_MODULE": "contentstudio.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "LOG_FORMAT must be plain or json" in result.stderr
