"""The video download is guarded: https, allowed hosts, no private addresses, checked redirects."""

import pytest
import responses

from avatars.errors import DownloadError, DownloadNotAllowed
from avatars.providers import download
from avatars.providers.download import check_download_url, open_video_download, redact

ALLOWED = [".heygen.ai", "127.0.0.1:9"]


def fake_resolver(address: str):
    return lambda host: [address]


def test_https_on_an_allowed_public_host_passes(monkeypatch):
    monkeypatch.setattr(download, "resolve_addresses", fake_resolver("18.160.10.20"))
    check_download_url("https://files2.heygen.ai/aws_pacific/v.mp4?Expires=1&Signature=s", ALLOWED)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://files2.heygen.ai/v.mp4", "must use https"),
        ("https://evil.example.com/v.mp4", "may not be downloaded from evil.example.com"),
        ("https://heygen.ai.evil.com/v.mp4", "may not be downloaded"),
        ("file:///etc/passwd", "no host"),
        ("ftp://files2.heygen.ai/v.mp4", "scheme 'ftp' is not allowed"),
        ("http://127.0.0.1:10/v.mp4", "must use https"),
        ("https://files2.heygen.ai:8443/v.mp4", "on port 8443"),
        ("https://user:pw@files2.heygen.ai/v.mp4", "must not carry credentials"),
        ("https://files2.heygen.ai:99999/v.mp4", "malformed port"),
    ],
)
def test_refused_urls(url, message):
    with pytest.raises(DownloadNotAllowed, match=message):
        check_download_url(url, ALLOWED)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "192.168.1.1"])
def test_allowed_suffix_resolving_to_a_private_address_is_refused(monkeypatch, address):
    monkeypatch.setattr(download, "resolve_addresses", fake_resolver(address))
    with pytest.raises(DownloadNotAllowed, match="private address"):
        check_download_url("https://files2.heygen.ai/v.mp4", ALLOWED)


def test_an_explicitly_listed_loopback_host_is_allowed():
    check_download_url("http://127.0.0.1:9/v.mp4", ALLOWED)


@responses.activate
def test_redirect_to_another_host_is_refused(monkeypatch):
    monkeypatch.setattr(download, "resolve_addresses", fake_resolver("18.160.10.20"))
    responses.get(
        "https://files2.heygen.ai/v.mp4",
        status=302,
        headers={"Location": "http://169.254.169.254/latest/meta-data/"},
    )
    with pytest.raises(DownloadNotAllowed):
        open_video_download("https://files2.heygen.ai/v.mp4", allowed_hosts=ALLOWED)


@responses.activate
def test_a_permanent_error_is_clear_and_hides_the_signature(monkeypatch):
    monkeypatch.setattr(download, "resolve_addresses", fake_resolver("18.160.10.20"))
    url = "https://files2.heygen.ai/v.mp4?Expires=1&Signature=SECRETSIG"
    responses.get("https://files2.heygen.ai/v.mp4", status=403)
    with pytest.raises(DownloadError) as error:
        open_video_download(url, allowed_hosts=ALLOWED)
    assert "HTTP 403" in str(error.value) and "SECRETSIG" not in str(error.value)
    assert redact(url) == "https://files2.heygen.ai/v.mp4"
