"""HeyGen API client: create a video (v2) and read its status (v1), as documented.

Retries (urllib3 `Retry`) on 429/5xx and connection errors, honouring `Retry-After`, within
a total deadline per call. Errors come back as the project's typed exceptions with one clear
sentence; the API key and signed URLs never appear in messages or logs.
"""

import logging
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from avatars.errors import (
    AuthenticationFailed,
    InvalidAvatarOrVoice,
    InvalidRequest,
    ProviderUnavailable,
    QuotaExceeded,
)
from avatars.providers.base import RenderRequest, RenderStatus
from avatars.providers.download import HttpVideoDownload, open_video_download

logger = logging.getLogger(__name__)

URL_LIFETIME = timedelta(days=7)
QUOTA_CODES = {"trial_video_limit_exceeded", "MOVIO_PAYMENT_INSUFFICIENT_CREDIT", "400664"}
AVATAR_VOICE_CODES = {"400144", "400116", "400685", "avatar_not_found", "voice_not_found"}
AUTH_CODES = {"40009", "400112", "unauthorized", "invalid_api_key"}


class _DeadlineRetry(Retry):
    """urllib3 Retry that never sleeps past the call's deadline."""

    deadline: float = 0.0

    def new(self, **kwargs):
        retry = super().new(**kwargs)
        retry.deadline = self.deadline
        return retry

    def sleep(self, response=None):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return
        wait = self.get_retry_after(response) if response else None
        wait = self.get_backoff_time() if wait is None else wait
        time.sleep(max(0.0, min(wait, remaining, 60.0)))


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
        backoff_factor: float = 0.5,
    ):
        self.api_base = (api_base or settings.HEYGEN_API_BASE).rstrip("/")
        self.timeout = timeout or settings.HEYGEN_REQUEST_TIMEOUT_SECONDS
        self.deadline = deadline or max(self.timeout * 3, 60.0)
        self.retries = retries
        self.backoff_factor = backoff_factor
        self.session = requests.Session()
        self.session.headers.update(
            {"X-Api-Key": api_key or settings.HEYGEN_API_KEY, "Accept": "application/json"}
        )

    def _retry(self) -> _DeadlineRetry:
        # POST is retried too: 429 and 5xx answers mean HeyGen did not accept the job, and a
        # duplicate render costs credits but never corrupts our data (callback_id ties it).
        retry = _DeadlineRetry(
            total=self.retries,
            connect=self.retries,
            read=0,  # a timed-out POST may have been accepted: never resend it
            status=self.retries,
            backoff_factor=self.backoff_factor,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "POST"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        retry.deadline = time.monotonic() + self.deadline
        return retry

    def _request(self, method: str, path: str, **kwargs) -> tuple[int, dict]:
        session = requests.Session()
        session.headers.update(self.session.headers)
        session.mount("http://", HTTPAdapter(max_retries=self._retry()))
        session.mount("https://", HTTPAdapter(max_retries=self._retry()))
        try:
            response = session.request(
                method, f"{self.api_base}{path}", timeout=self.timeout, **kwargs
            )
        except requests.RequestException as error:
            raise ProviderUnavailable(
                f"HeyGen could not be reached ({error.__class__.__name__}); try again later."
            ) from error
        finally:
            session.close()
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return response.status_code, body

    @staticmethod
    def _raise_for(status: int, body: dict) -> None:
        error = body.get("error") or {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
        code = str(error.get("code") or body.get("code") or "")
        message = str(error.get("message") or body.get("message") or "no details")
        lowered = message.lower()
        if status == 401 or code in AUTH_CODES:
            raise AuthenticationFailed("HeyGen rejected the API key; check HEYGEN_API_KEY.")
        if status == 402 or code in QUOTA_CODES or (status == 429 and "limit" in lowered):
            raise QuotaExceeded(f"HeyGen quota or credits exhausted: {message}")
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
            "title": request.title[:200],
            "callback_id": request.callback_id,
            "caption": False,
            "test": False,
        }
        status, body = self._request("POST", "/v2/video/generate", json=payload)
        video_id = (body.get("data") or {}).get("video_id") if status == 200 else None
        if not video_id:
            self._raise_for(status if status != 200 else 502, body)
        logger.info(
            "heygen video %s created for callback %s",
            video_id,
            request.callback_id,
            extra={"video_id": video_id, "callback_id": request.callback_id},
        )
        return str(video_id)

    def get_status(self, provider_video_id: str) -> RenderStatus:
        """GET /v1/video_status.get (v1 envelope: code 100 = ok)."""
        status, body = self._request(
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
        )

    def open_download(self, video_url: str) -> HttpVideoDownload:
        return open_video_download(video_url, timeout=self.timeout)


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
