"""The avatar video pipeline's pieces, which the job engine's steps (avatars/steps.py) are
made of: `start_render`, `store_rendered_video` (ledger entry first, then the verified stream,
the upload's lease renewed while the bytes flow), `build_result` (a result shaped like the
original system's: videoUrl, videoId, language, duration_seconds, status, fallback, the
storage metadata fields and `metadata`) and `content_data_from_result`. There is one path
through it: the engine's (commands and tests drive it with `jobs.run_job_inline`).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from avatars.providers.base import RenderRequest, RenderStatus, VideoProvider
from avatars.providers.local import LocalVideoProvider
from videostore import ledger
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
#: How often a copy renews the leases it holds (and records its progress).
RENEW_EVERY_SECONDS = 1.0


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


def start_render(options: RenderOptions, *, provider: VideoProvider) -> str:
    """Ask the provider to render; returns its video id."""
    request = RenderRequest(
        script=options.script,
        language=options.language,
        avatar_id=options.avatar_id or settings.HEYGEN_DEFAULT_AVATAR_ID,
        voice_id=options.voice_id or settings.HEYGEN_DEFAULT_VOICE_ID,
        title=options.title,
        callback_id=options.callback_id,
    )
    return provider.create_video(request)


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

    `upload_owner` / `lease_seconds`: the live worker that will reference the object; the
    upload's lease is renewed while the bytes flow (the one place that does it)."""
    storage_path = video_storage.new_storage_path(status.provider_video_id)
    on_progress = _renewing_upload_lease(on_progress, storage_path, upload_owner, lease_seconds)
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


def _renewing_upload_lease(
    on_progress: ProgressCallback, storage_path: str, owner: str, lease_seconds: float | None
) -> ProgressCallback:
    """`on_progress`, plus the upload's ledger lease renewed at most once a second."""
    last = [time.monotonic()]

    def progress(stage: str, details: dict) -> None:
        if stage == "copying" and owner and time.monotonic() - last[0] >= RENEW_EVERY_SECONDS:
            last[0] = time.monotonic()
            ledger.renew_upload_lease(storage_path, owner=owner, lease_seconds=lease_seconds
                                      or settings.VIDEO_JOB_LEASE_SECONDS)  # fmt: skip
        on_progress(stage, details)

    return progress


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
