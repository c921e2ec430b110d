"""HeyGen API client: create a video (v2) and read its status (v1), as documented.

One pooled `requests.Session` per process serves every call (connection reuse). Retries
(urllib3 `Retry`) on 5xx and connection errors, honouring `Retry-After`, within a total
deadline per call; a 429 on create is not waited out here (RenderSlotsBusy: the job waits as
a row, not in a worker), status reads retry it. Redirects are never followed, so the API key
only ever goes to HEYGEN_API_BASE. Errors come back as the project's typed exceptions with
one clear sentence; the API key and signed URLs never appear in messages or logs.
"""

import http.cookiejar
import logging
import os
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util.retry import Retry

from avatars.errors import (
    AuthenticationFailed,
    InvalidAvatarOrVoice,
    InvalidRequest,
    ProviderError,
    ProviderUnavailable,
    QuotaExceeded,
    RenderSlotsBusy,
    SubmissionOutcomeUnknown,
)
from avatars.providers.base import Avatar, RenderRequest, RenderStatus, Voice
from avatars.providers.download import HttpVideoDownload, open_video_download

logger = logging.getLogger(__name__)

URL_LIFETIME = timedelta(days=7)
QUOTA_CODES = {"trial_video_limit_exceeded", "MOVIO_PAYMENT_INSUFFICIENT_CREDIT", "400664"}
#: A 429 whose message says this is a plan's quota (trial/daily caps, credits), not a rate.
QUOTA_WORDS = ("trial", "quota", "credit", "daily", "weekly", "monthly")
AVATAR_VOICE_CODES = {"400144", "400116", "400685", "avatar_not_found", "voice_not_found"}
AUTH_CODES = {"40009", "400112", "unauthorized", "invalid_api_key"}
RETRY_STATUSES = frozenset({500, 502, 503, 504})
#: Renders created this long before a create call began are not looked at when finding it
#: again (HeyGen's clock and the database's may differ by this much).
LIST_CLOCK_MARGIN = timedelta(minutes=5)
LIST_PAGE_SIZE = 100
LIST_MAX_PAGES = 50


class _DeadlineRetry(Retry):
    """urllib3 Retry that never sleeps past the call's deadline."""

    deadline: float = 0.0
    #: Answers never retried, whatever their Retry-After says (429 on create: the job waits).
    final_statuses: frozenset[int] = frozenset()

    def new(self, **kwargs):
        retry = super().new(**kwargs)
        retry.deadline = self.deadline
        retry.final_statuses = self.final_statuses
        return retry

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code in self.final_statuses:
            return False
        return super().is_retry(method, status_code, has_retry_after)

    def sleep(self, response=None):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return
        wait = self.get_retry_after(response) if response else None
        wait = self.get_backoff_time() if wait is None else wait
        time.sleep(max(0.0, min(wait, remaining, 60.0)))


#: The retry policy of the call running in this thread (each call has its own deadline).
_call_retry: ContextVar[Retry | None] = ContextVar("heygen_call_retry", default=None)


class _PerCallRetryAdapter(HTTPAdapter):
    """An HTTPAdapter whose pooled connections serve every call, while each call brings its
    own retry policy: `max_retries` is read per send from the calling thread's context."""

    @property
    def max_retries(self) -> Retry:
        return _call_retry.get() or self._default_retries

    @max_retries.setter
    def max_retries(self, value: Retry) -> None:
        self._default_retries = value


_session: requests.Session | None = None
_session_pid: int | None = None
_session_lock = threading.Lock()


def _shared_session() -> requests.Session:
    """The process's session, made on first use (after a fork, a new one for the child:
    pooled sockets must not be shared between processes)."""
    global _session, _session_pid
    with _session_lock:
        if _session is None or _session_pid != os.getpid():
            session = requests.Session()
            # API calls are stateless; a shared cookie jar would carry one caller's
            # cookies into another's requests.
            session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            for prefix in ("http://", "https://"):
                session.mount(prefix, _PerCallRetryAdapter(pool_connections=4, pool_maxsize=16))
            _session, _session_pid = session, os.getpid()
        return _session


def _retry_after(headers) -> float | None:
    value = (headers or {}).get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


class HeyGenClient:
    """The HeyGen v2/v1 API behind the project's VideoProvider protocol."""

    name = "heygen"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        api_base: str | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        retries: int = 4,
        backoff_factor: float | None = None,
    ):
        self.api_base = (api_base or settings.HEYGEN_API_BASE).rstrip("/")
        self.timeout = timeout or settings.HEYGEN_REQUEST_TIMEOUT_SECONDS
        self.deadline = deadline or max(self.timeout * 3, 60.0)
        self.retries = retries
        self.backoff_factor = (
            settings.HEYGEN_RETRY_BACKOFF_SECONDS if backoff_factor is None else backoff_factor
        )
        self._headers = {
            "X-Api-Key": api_key or settings.HEYGEN_API_KEY,
            "Accept": "application/json",
        }

    @property
    def max_call_seconds(self) -> float:
        """The longest one call can take: its retries end by the deadline, and the last
        attempt may then wait one more timeout for its answer."""
        return self.deadline + self.timeout

    @property
    def session(self) -> requests.Session:
        """The process-wide pooled session every HeyGenClient shares."""
        return _shared_session()

    def _retry(self, method: str) -> _DeadlineRetry:
        # POST is retried on 5xx: HeyGen did not accept the job, and a duplicate render costs
        # credits but never corrupts our data (callback_id ties it). A 429 on POST is not: the
        # plan's render slots are busy, and the job engine waits for them, not this worker.
        retry = _DeadlineRetry(
            total=self.retries,
            connect=self.retries,
            read=0,  # a timed-out POST may have been accepted: never resend it
            redirect=0,
            status=self.retries,
            backoff_factor=self.backoff_factor,
            status_forcelist=RETRY_STATUSES | {429},
            allowed_methods=frozenset({"GET", "POST"}),
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        retry.deadline = time.monotonic() + self.deadline
        retry.final_statuses = frozenset({429}) if method == "POST" else frozenset()
        return retry

    def _request(self, method: str, path: str, **kwargs) -> tuple[int, dict, Mapping[str, str]]:
        """(HTTP status, JSON body or {}, response headers) of one API call."""
        token = _call_retry.set(self._retry(method))
        try:
            response = self.session.request(
                method,
                f"{self.api_base}{path}",
                headers=self._headers,
                timeout=self.timeout,
                allow_redirects=False,  # the key must never follow a redirect to another host
                **kwargs,
            )
        except requests.RequestException as error:
            if method == "POST" and not _never_sent(error):
                raise SubmissionOutcomeUnknown(
                    f"HeyGen's answer to {path} was lost ({error.__class__.__name__}); the "
                    "request may have been accepted and is looked up before any new one."
                ) from error
            raise ProviderUnavailable(
                f"HeyGen could not be reached ({error.__class__.__name__}); try again later."
            ) from error
        finally:
            _call_retry.reset(token)
        with response:
            if 300 <= response.status_code < 400:
                target = urlsplit(response.headers.get("Location", "")).netloc or "elsewhere"
                raise ProviderError(
                    f"HeyGen answered {path} with a redirect (HTTP {response.status_code}) to "
                    f"{target}; API calls never follow redirects, check HEYGEN_API_BASE."
                )
            try:
                body = response.json()
            except ValueError:
                body = {}
        if not isinstance(body, dict):
            body = {}
        return response.status_code, body, response.headers

    @staticmethod
    def _raise_for(
        status: int,
        body: dict,
        *,
        slots_busy_on_429: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        error = body.get("error") or {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
        code = str(error.get("code") or body.get("code") or "")
        message = str(error.get("message") or body.get("message") or "no details")
        lowered = message.lower()
        if status == 401 or code in AUTH_CODES:
            raise AuthenticationFailed("HeyGen rejected the API key; check HEYGEN_API_KEY.")
        if (
            status == 402
            or code in QUOTA_CODES
            or (status == 429 and any(word in lowered for word in QUOTA_WORDS))
        ):
            raise QuotaExceeded(f"HeyGen quota or credits exhausted: {message}")
        if status == 429 and slots_busy_on_429:
            raise RenderSlotsBusy(
                f"HeyGen is busy for this account ({code or 'HTTP 429'}: {message}); "
                "the video will be submitted again later.",
                retry_after=_retry_after(headers),
            )
        if code in AVATAR_VOICE_CODES or (
            status in (400, 404) and ("avatar" in lowered or "voice" in lowered)
        ):
            raise InvalidAvatarOrVoice(f"HeyGen does not accept this avatar or voice: {message}")
        if status >= 500 or status == 429:
            raise ProviderUnavailable(f"HeyGen kept failing (HTTP {status}); try again later.")
        raise InvalidRequest(f"HeyGen refused the request (HTTP {status}): {message}")

    def create_video(self, request: RenderRequest) -> str:
        """POST /v2/video/generate; returns HeyGen's video id."""
        payload = {
            "video_inputs": [
                {
                    "character": {
                        "type": "avatar",
                        "avatar_id": request.avatar_id,
                        "avatar_style": "normal",
                    },
                    "voice": {
                        "type": "text",
                        "voice_id": request.voice_id,
                        "input_text": request.script,
                        "speed": 1.0,
                    },
                    "background": {"type": "color", "value": "#FFFFFF"},
                }
            ],
            "dimension": {"width": request.width, "height": request.height},
            "title": (request.title or request.script[:60])[:200],
            "callback_id": request.callback_id,
            # Captions are made only when asked for (voice type text); the file comes back
            # as `caption_url` in the status.
            "caption": True,
            "test": False,
        }
        status, body, headers = self._request("POST", "/v2/video/generate", json=payload)
        data = body.get("data")
        video_id = data.get("video_id") if status == 200 and isinstance(data, dict) else None
        if not video_id:
            # A 429 here is a rate or concurrent-render limit (quotas aside): the job waits.
            self._raise_for(
                status if status != 200 else 502, body, slots_busy_on_429=True, headers=headers
            )
        logger.info(
            "heygen video %s created (callback_id %s)",
            video_id,
            request.callback_id,
            extra={"video_id": video_id, "callback_id": request.callback_id},
        )
        return str(video_id)

    def get_status(self, provider_video_id: str) -> RenderStatus:
        """GET /v1/video_status.get (v1 envelope: code 100 = ok)."""
        status, body, _ = self._request(
            "GET", "/v1/video_status.get", params={"video_id": provider_video_id}
        )
        data = body.get("data")
        if status != 200 or not isinstance(data, dict) or body.get("code") not in (100, None):
            self._raise_for(status if status != 200 else 502, body)
        error = data.get("error") or {}
        message = None
        if isinstance(error, dict) and error:
            message = " ".join(str(error.get(k)) for k in ("message", "detail") if error.get(k))
        video_url = data.get("video_url") or None
        return RenderStatus(
            provider_video_id=provider_video_id,
            status=str(data.get("status") or "pending"),
            video_url=video_url,
            duration_seconds=_float(data.get("duration")),
            error_message=message,
            error_code=str(error.get("code")) if isinstance(error, dict) and error else None,
            url_expires_at=_url_expiry(video_url),
            callback_id=data.get("callback_id"),
            thumbnail_url=data.get("thumbnail_url") or None,
            caption_url=data.get("caption_url") or None,
        )

    def find_render(self, *, title: str, since: datetime) -> str | None:
        """GET /v1/video.list, newest first, back to `since` (minus a clock margin): the id
        of the video with exactly this title, or None once the list is read past `since`."""
        oldest = (since - LIST_CLOCK_MARGIN).timestamp()
        page_token = None
        for _ in range(LIST_MAX_PAGES):
            params = {"limit": LIST_PAGE_SIZE, **({"token": page_token} if page_token else {})}
            status, body, _ = self._request("GET", "/v1/video.list", params=params)
            data = body.get("data")
            if status != 200 or not isinstance(data, dict):
                self._raise_for(status if status != 200 else 502, body)
            videos = data.get("videos") or []
            for video in videos:
                if video.get("video_title") == title and video.get("video_id"):
                    return str(video["video_id"])
            page_token = data.get("token")
            if not videos or not page_token or min(_created(v) for v in videos) < oldest:
                return None
        raise ProviderUnavailable(
            f"HeyGen's video list was still newer than {since.isoformat()} after "
            f"{LIST_MAX_PAGES} pages; the look-up will be tried again."
        )

    def remaining_quota(self) -> int:
        """GET /v2/user/remaining_quota: the account's remaining API quota, in seconds of
        video (HeyGen: 60 make one credit)."""
        status, body, _ = self._request("GET", "/v2/user/remaining_quota")
        data = body.get("data")
        quota = data.get("remaining_quota") if status == 200 and isinstance(data, dict) else None
        if not isinstance(quota, int | float):
            self._raise_for(status if status != 200 else 502, body)
        return int(quota)

    def _listing(self, path: str, key: str) -> list[dict]:
        status, body, _ = self._request("GET", path)
        data = body.get("data")
        entries = data.get(key) if status == 200 and isinstance(data, dict) else None
        if not isinstance(entries, list):
            self._raise_for(status if status != 200 else 502, body)
        return [entry for entry in entries if isinstance(entry, dict)]

    def list_avatars(self) -> list[Avatar]:
        """GET /v2/avatars: the account's avatars, with their preview images."""
        return [
            Avatar(id=str(entry["avatar_id"]), name=str(entry.get("avatar_name") or ""),
                   preview_image_url=str(entry.get("preview_image_url") or ""))
            for entry in self._listing("/v2/avatars", "avatars") if entry.get("avatar_id")
        ]  # fmt: skip

    def list_voices(self) -> list[Voice]:
        """GET /v2/voices: the voices this account may use, with their language."""
        return [
            Voice(id=str(entry["voice_id"]), name=str(entry.get("name") or ""),
                  language=str(entry.get("language") or ""),
                  gender=str(entry.get("gender") or ""),
                  preview_audio_url=str(entry.get("preview_audio") or ""))
            for entry in self._listing("/v2/voices", "voices") if entry.get("voice_id")
        ]  # fmt: skip

    def open_download(self, video_url: str) -> HttpVideoDownload:
        return open_video_download(video_url, timeout=self.timeout)


def _never_sent(error: requests.RequestException) -> bool:
    """The request never left this machine (no connection was made): nothing to look up."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, ConnectTimeoutError)  # NewConnectionError is one too


def _created(video: dict) -> float:
    try:
        return float(video.get("created_at") or 0)
    except (TypeError, ValueError):
        return 0.0


def _float(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _url_expiry(video_url: str | None) -> datetime | None:
    """From the URL's `Expires` parameter, else HeyGen's documented 7 days."""
    if not video_url:
        return None
    expires = parse_qs(urlsplit(video_url).query).get("Expires", [""])[0]
    if expires.isdigit():
        return datetime.fromtimestamp(int(expires), tz=UTC)
    return datetime.now(UTC) + URL_LIFETIME
