"""`host_is_allowed`: the download guard's allow-list matching, without its DNS check, for
links a page embeds (the browser fetches them, not us). It agrees with the guard."""

import pytest

from avatars.errors import DownloadNotAllowed
from avatars.providers import download
from avatars.providers.download import check_download_url, host_is_allowed

ALLOWED = [".heygen.ai", "127.0.0.1:9", "Files.Example.com"]

URLS = [
    ("https://files2.heygen.ai/v.mp4?Expires=1&Signature=s", True),
    ("https://FILES2.HEYGEN.AI:443/v.mp4", True),
    ("http://127.0.0.1:9/v.mp4", True),
    ("http://files.example.com/v.mp4", True),  # exactly listed: http too
    ("http://files2.heygen.ai/v.mp4", False),
    ("https://heygen.ai.evil.com/v.mp4", False),
    ("https://files2.heygen.ai:8443/v.mp4", False),
    ("http://127.0.0.1:10/v.mp4", False),
    ("https://user:pw@files2.heygen.ai/v.mp4", False),
    ("https://files2.heygen.ai:99999/v.mp4", False),
    ("ftp://files.example.com/v.mp4", False),
    ("file:///etc/passwd", False),
    ("", False),
]


@pytest.mark.parametrize(("url", "allowed"), URLS)
def test_host_is_allowed_matches_the_download_guard(url, allowed, monkeypatch):
    monkeypatch.setattr(download, "resolve_addresses", lambda host: ["18.160.10.20"])
    assert host_is_allowed(url, ALLOWED) is allowed
    if allowed:
        check_download_url(url, ALLOWED)
    else:
        with pytest.raises(DownloadNotAllowed):
            check_download_url(url, ALLOWED)


def test_host_is_allowed_reads_the_setting_and_never_resolves(settings, monkeypatch):
    def no_dns(host):
        raise AssertionError("no DNS lookup for a link the browser fetches")

    monkeypatch.setattr(download, "resolve_addresses", no_dns)
    settings.AVATAR_DOWNLOAD_ALLOWED_HOSTS = [".heygen.ai"]
    assert host_is_allowed("https://files2.heygen.ai/v.mp4")
    assert not host_is_allowed("https://evil.example.com/v.mp4")
