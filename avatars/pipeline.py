"""The avatar video pipeline: render at the provider, wait, stream into storage.

The pieces the job engine's steps (avatars/steps.py) are made of: `start_render`,
`store_rendered_video` (ledger entry first, then the verified stream), `build_result` and
`content_data_from_result`. `generate_avatar_video` chains them in one call and returns a result
shaped like the original system's (videoUrl, videoId, language, duration_seconds, status,
fallback, the storage metadata fields and `metadata`); it waits for the render in
`wait_for_render`, so it is for synchronous callers (scripts, tests), never for a worker. When
storage fails, the provider's URL stands in (`fallback`), with its expiry recorded so a
scheduled task can still copy it into storage in time.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError

from avatars.errors import InvalidRequest, RenderFailed, RenderTimeout
from avatars.providers import get_provider
from avatars.providers.base import RenderRequest, RenderStatus, VideoProvider
from avatars.providers.local import LocalVideoProvider
from topics import validators
from videostore import ledger
from videostore.errors import StorageUnavailable
from videostore.storage import (
    MEASURED_FIELDS,
    STORAGE_METADATA_FIELDS,
    StoredVideo,
    VideoStorage,
)

logger = logging.getLogger(__name__)

#: The offline renderer's name: its videos are previews made on this machine.
OFFLINE_PROVIDER = LocalVideoProvider.name

ProgressCallback = Callable[[str, dict], None]


def _no_progress(stage: str, details: dict) -> None:
    return None


@dataclass(frozen=True)
class RenderOptions:
    """What the author asked for."""

    script: str
    language: str = "en"
    avatar_id: str = ""
    voice_id: str = ""
    title: str = ""
    callback_id: str = ""


def validate_script(script: str) -> str:
    """Refuse an empty or over-long script before spending provider credits (the one script
    rule, topics/validators.py, as the provider error the pipeline's callers handle)."""
    try:
        return validators.validate_script(script)
    except ValidationError as error:
        raise InvalidRequest(error.messages[0]) from error


def start_render(options: RenderOptions, *, provider: VideoProvider) -> str:
    """Ask the provider to render; returns its video id."""
    request = RenderRequest(
        script=validate_script(options.script),
        language=options.language,
        avatar_id=options.avatar_id or settings.HEYGEN_DEFAULT_AVATAR_ID,
        voice_id=options.voice_id or settings.HEYGEN_DEFAULT_VOICE_ID,
        title=options.title or options.script[:60],
        callback_id=options.callback_id,
    )
    return provider.create_video(request)


def wait_for_render(
    provider_video_id: str,
    *,
    provider: VideoProvider,
    on_progress: ProgressCallback = _no_progress,
    deadline_seconds: float | None = None,
    poll_interval: float | None = None,
) -> RenderStatus:
    """Poll until the render is terminal; RenderFailed / RenderTimeout otherwise. It sleeps
    between polls: synchronous callers only (the job engine checks renders in batches)."""
    deadline = time.monotonic() + (deadline_seconds or settings.HEYGEN_RENDER_DEADLINE_SECONDS)
    interval = poll_interval or settings.HEYGEN_POLL_INTERVAL_SECONDS
    while True:
        status = provider.get_status(provider_video_id)
        on_progress("rendering", {"provider_status": status.status})
        if status.status == "failed":
            raise RenderFailed(
                f"The provider could not render video {provider_video_id}: "
                f"{status.error_message or 'no reason given'}."
            )
        if status.is_completed:
            return status
        if time.monotonic() + interval > deadline:
            raise RenderTimeout(
                f"Video {provider_video_id} was still {status.status} when the wait ended."
            )
        time.sleep(interval)
        interval = min(interval * 1.5, 60)


def store_rendered_video(
    status: RenderStatus,
    *,
    provider: VideoProvider,
    video_storage: VideoStorage,
    on_progress: ProgressCallback = _no_progress,
    upload_owner: str = "",
    lease_seconds: float | None = None,
) -> StoredVideo:
    """Stream the rendered video into storage, with a ledger entry committed first.

    `upload_owner` / `lease_seconds`: the live worker that will reference the object; it
    renews the lease through `on_progress("copying", {"bytes_copied": n, ...})`."""
    storage_path = video_storage.new_storage_path(status.provider_video_id)
    ledger.register_pending_upload(
        storage_path,
        reason=f"video {status.provider_video_id}",
        owner=upload_owner,
        lease_seconds=lease_seconds,
    )
    try:
        on_progress("downloading", {"storage_path": storage_path})
        download = provider.open_download(status.video_url)
        try:
            on_progress(
                "uploading", {"storage_path": storage_path, "bytes_total": download.content_length}
            )
            return video_storage.upload_video(
                download.iter_chunks(),
                storage_path.rsplit("/", 1)[-1],
                "video/mp4",
                storage_path=storage_path,
                expected_size=download.content_length,
                on_bytes=lambda count: on_progress(
                    "copying", {"storage_path": storage_path, "bytes_copied": count}
                ),
            )
        finally:
            download.close()
    except BaseException:
        # Nothing references the object: delete it now, or leave the delete to the ledger.
        ledger.discard_upload(storage_path, reason="upload did not complete")
        raise


def fallback_allowed(status: RenderStatus) -> bool:
    """A provider URL may stand in for storage only when it is a web URL."""
    return bool(status.video_url) and status.video_url.startswith(("https://", "http://"))


def build_result(
    status: RenderStatus,
    *,
    language: str,
    stored: StoredVideo | None,
    storage_error: str = "",
    offline_preview: bool = False,
) -> dict:
    """The result in the original system's shape; `offline_preview`: rendered by the offline
    renderer (a preview made on this machine, not an avatar video from the provider)."""
    fallback = stored is None
    storage_metadata = stored.as_metadata() if stored else None
    result = {
        "videoUrl": stored.file_url if stored else status.video_url,
        "videoId": status.provider_video_id,
        "language": language,
        "duration_seconds": (
            stored.duration_seconds
            if stored and stored.duration_seconds
            else status.duration_seconds
        ),
        "status": "completed",
        "fallback": fallback,
        "metadata": {
            "heygen_video_url": status.video_url,
            "generation_status": status.status,
            "storage_fallback": fallback,
            "storage_metadata": storage_metadata,
            "offline_preview": offline_preview,
        },
        "provider_url_expires_at": status.url_expires_at if fallback else None,
        "storage_error": storage_error,
    }
    for key in STORAGE_METADATA_FIELDS:
        result[key] = storage_metadata[key] if storage_metadata else None
    for key in MEASURED_FIELDS:  # duration_seconds is set above (the provider's as a fallback)
        result.setdefault(key, storage_metadata.get(key) if storage_metadata else None)
    return result


def generate_avatar_video(
    options: RenderOptions,
    *,
    provider: VideoProvider | None = None,
    video_storage: VideoStorage | None = None,
    provider_video_id: str = "",
    on_progress: ProgressCallback = _no_progress,
) -> dict:
    """Render, wait and store one avatar video; see the module docstring for the result.

    Pass `provider_video_id` to resume a render started earlier (a retried job), so a
    retry never pays for a second render.
    """
    provider = provider or get_provider()
    video_storage = video_storage or VideoStorage()
    offline_preview = provider.name == OFFLINE_PROVIDER
    if not provider_video_id:
        provider_video_id = start_render(options, provider=provider)
    on_progress("rendering", {"provider_video_id": provider_video_id})
    status = wait_for_render(provider_video_id, provider=provider, on_progress=on_progress)
    on_progress("rendered", {"duration_seconds": status.duration_seconds})
    try:
        stored = store_rendered_video(
            status, provider=provider, video_storage=video_storage, on_progress=on_progress
        )
    except StorageUnavailable as error:
        if not fallback_allowed(status):
            raise
        logger.warning(
            "storage unavailable for video %s; falling back to the provider URL: %s",
            provider_video_id,
            error,
            extra={"video_id": provider_video_id, "error": str(error)},
        )
        return build_result(
            status,
            language=options.language,
            stored=None,
            storage_error=str(error),
            offline_preview=offline_preview,
        )
    return build_result(
        status, language=options.language, stored=stored, offline_preview=offline_preview
    )


def content_data_from_result(result: dict, *, script: str) -> dict:
    """The fields of a result that a ContentItem keeps (cleaned again on save)."""
    data = {key: result.get(key) for key in ("videoUrl", "videoId", *STORAGE_METADATA_FIELDS,
                                             *MEASURED_FIELDS)}  # fmt: skip
    data["script"] = script
    data["metadata"] = {
        "heygen_video_url": result["metadata"]["heygen_video_url"],
        "storage_fallback": result["fallback"],
    }
    if result["metadata"].get("offline_preview"):
        data["metadata"]["offline_preview"] = True
    return data


def url_expiry(result: dict) -> datetime | None:
    """When the provider URL of a fallback result stops working."""
    return result.get("provider_url_expires_at")
