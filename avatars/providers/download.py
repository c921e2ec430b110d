"""Downloading a rendered video over HTTP, guarded against SSRF, as a stream.

Rules: https only, on a host from AVATAR_DOWNLOAD_ALLOWED_HOSTS (".heygen.ai" matches its
subdomains); a host resolving to a private, loopback or link-local address is refused unless
that exact host is listed (how tests and demos allow the fake server). Plain http only for an
exactly listed host; a host matched by a suffix only on port 443, and no URL may carry
credentials. Redirects are followed by hand, each hop checked by the same rules.
An entry may carry a port ("127.0.0.1:8123"); it then matches only that port.
"""

import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings

from avatars.errors import DownloadError, DownloadNotAllowed

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
RETRY_STATUSES = {404, 429, 500, 502, 503, 504}  # 404: briefly, right after "completed"
_THREAD = threading.local()


def download_session() -> requests.Session:
    """This thread's session for downloads, its connections kept from one file to the next:
    a video, its thumbnail and its captions come from one CDN (one connection and TLS
    handshake where each file made its own). A connection the server closed meanwhile is
    noticed before reuse, and a failed request is tried again (`attempts`). A forked
    process (a django-q2 worker) makes its own: it never shares its parent's sockets."""
    pid, session = getattr(_THREAD, "owned", (None, None))
    if session is None or pid != os.getpid():
        session = requests.Session()
        _THREAD.owned = (os.getpid(), session)
    return session


def redact(url: str) -> str:
    """scheme://host/path, without the query string (it carries the signature)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _explicitly_listed(host: str, port: int | None, allowed: list[str]) -> bool:
    with_port = f"{host}:{port}" if port else host
    return host in allowed or with_port in allowed


def _suffix_allowed(host: str, allowed: list[str]) -> bool:
    return any(entry.startswith(".") and host.endswith(entry) for entry in allowed)


def resolve_addresses(host: str) -> list[str]:
    """Every address the host resolves to."""
    try:
        return [info[4][0] for info in socket.getaddrinfo(host, None)]
    except socket.gaierror as error:
        raise DownloadError(f"The video host {host} could not be resolved.") from error


def _resolves_public(host: str) -> bool:
    return all(ipaddress.ip_address(address).is_global for address in resolve_addresses(host))


def _allowed_hosts(allowed_hosts: list[str] | None) -> list[str]:
    return [h.lower() for h in (allowed_hosts or settings.AVATAR_DOWNLOAD_ALLOWED_HOSTS)]


def _allow_list_refusal(url: str, allowed: list[str]) -> str:
    """Why the allow-list refuses the URL, in one sentence; "" when it allows it."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return "The video URL has a malformed port."
    host = (parts.hostname or "").lower()
    if not host:
        return "The video URL has no host."
    if parts.username is not None or parts.password is not None:
        return f"The video URL for {host} must not carry credentials."
    listed = _explicitly_listed(host, port, allowed)
    if parts.scheme == "http" and not listed:
        return f"The video URL must use https, not http ({host})."
    if parts.scheme not in {"http", "https"}:
        return f"The video URL scheme {parts.scheme!r} is not allowed."
    if listed:
        return ""
    if not _suffix_allowed(host, allowed):
        return f"Videos may not be downloaded from {host}."
    if port not in (None, 443):  # a suffix entry means the provider's CDN, on https's port
        return f"Videos may not be downloaded from {host} on port {port}."
    return ""


def host_is_allowed(url: str, allowed_hosts: list[str] | None = None) -> bool:
    """Does the allow-list let this URL through (scheme, credentials, host, port)? The same
    matching as the download guard without its DNS check: for links a browser fetches."""
    return not _allow_list_refusal(url, _allowed_hosts(allowed_hosts))


def check_download_url(url: str, allowed_hosts: list[str] | None = None) -> None:
    """Raise DownloadNotAllowed unless the URL may be fetched."""
    allowed = _allowed_hosts(allowed_hosts)
    refusal = _allow_list_refusal(url, allowed)
    if refusal:
        raise DownloadNotAllowed(refusal)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    # A host allowed by a suffix only: it must not lead to this network.
    if not _explicitly_listed(host, parts.port, allowed) and not _resolves_public(host):
        raise DownloadNotAllowed(f"The video host {host} resolves to a private address.")


class HttpVideoDownload:
    """An open HTTP response streaming a video."""

    def __init__(self, response: requests.Response, url: str):
        self._response = response
        self._url = url
        length = response.headers.get("Content-Length")
        self.content_length = int(length) if length and length.isdigit() else None
        self.content_type = response.headers.get("Content-Type")

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        try:
            yield from self._response.iter_content(chunk_size=chunk_size)
        except requests.RequestException as error:
            raise DownloadError(
                f"The video download from {redact(self._url)} was truncated: the connection "
                f"broke off before the end ({error.__class__.__name__})."
            ) from error

    def close(self) -> None:
        self._response.close()


def open_video_download(
    url: str,
    *,
    allowed_hosts: list[str] | None = None,
    timeout: float = 30.0,
    attempts: int = 4,
    session: requests.Session | None = None,
) -> HttpVideoDownload:
    """Open the video for streaming, retrying transient failures with backoff."""
    session = session or download_session()
    last_error = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(2**attempt * 0.25, 5))
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            check_download_url(current, allowed_hosts)
            try:
                response = session.get(current, stream=True, timeout=timeout, allow_redirects=False)
            except requests.RequestException as error:
                last_error = error.__class__.__name__
                break
            if response.is_redirect:
                location = response.headers.get("Location", "")
                response.close()
                current = urljoin(current, location)
                continue
            if response.status_code == 200:
                return HttpVideoDownload(response, current)
            response.close()
            last_error = f"HTTP {response.status_code}"
            if response.status_code not in RETRY_STATUSES:
                raise DownloadError(
                    f"The video download from {redact(current)} failed with {last_error}."
                )
            break
        else:
            raise DownloadNotAllowed(f"The video URL redirected more than {MAX_REDIRECTS} times.")
    raise DownloadError(
        f"The video download from {redact(url)} failed after {attempts} tries: {last_error}."
    )
