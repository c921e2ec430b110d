"""The avatar video pipeline's pieces, which the job engine's steps (avatars/steps.py) are
made of: `start_render`, `store_rendered_video` (ledger entry first, then the verified stream,
the upload's lease renewed while the bytes flow), `build_result` (a result shaped like the
original system's: videoUrl, videoId, language, duration_seconds, status, fallback, the
storage metadata fields and `metadata`) and `content_data_from_result`. There is one path
through it: the engine's (commands and tests drive it with `jobs.run_job_inline`).
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from django.conf import settings

from avatars.companions import make_captions, make_poster, upload_poster_and_captions
from avatars.providers.base import RenderRequest, RenderStatus, VideoProvider
from avatars.providers.local import LocalVideoProvider
from topics.objects import CAPTIONS_FIELDS, POSTER_FIELDS
from videostore import ledger
from videostore.errors import InvalidStoragePath, InvalidVideo, StorageUnavailable
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


@dataclass(frozen=True)
class StoredUnit:
    """A stored video with its poster and captions: `companions` holds their content_data
    fields (topics/objects.py)."""

    video: StoredVideo
    companions: dict

    @property
    def storage_paths(self) -> list[str]:
        paths = [self.companions.get("posterPath"), self.companions.get("captionsPath")]
        return [self.video.storage_path, *(path for path in paths if path)]


def store_rendered_video(
    status: RenderStatus,
    *,
    provider: VideoProvider,
    video_storage: VideoStorage,
    script: str = "",
    language: str = "en",
    on_progress: ProgressCallback = _no_progress,
    upload_owner: str = "",
    lease_seconds: float | None = None,
) -> StoredUnit:
    """Stream the rendered video into storage, then its poster and captions beside it: one
    unit, every key registered in the upload ledger (committed) before any byte is sent.

    `upload_owner` / `lease_seconds`: the live worker that will reference them; their leases
    are renewed while the bytes flow (the one place that does it). When any part fails,
    every part is discarded (now, or by the ledger's retry) and the error is raised: the
    caller retries or falls back exactly as for a failed video upload."""
    storage_path = video_storage.new_storage_path(status.provider_video_id)
    poster_path = video_storage.new_companion_path(storage_path, "jpg")
    captions_path = video_storage.new_companion_path(storage_path, "vtt")
    paths = [storage_path, poster_path, captions_path]
    renew = _lease_renewer(paths, upload_owner, lease_seconds)
    reasons = {
        path: f"{what} of video {status.provider_video_id}"
        for path, what in zip(paths, ("video", "poster", "captions"), strict=True)
    }
    # Keys are never reused: one listing of the unit's keys (not a look-up each), before any
    # is registered, so a taken key's object is never among what a failure discards.
    taken = video_storage.stored_sizes(paths)
    if taken:
        raise InvalidStoragePath(f"{sorted(taken)} are taken; storage keys are never reused.")
    ledger.register_pending_uploads(reasons, owner=upload_owner, lease_seconds=lease_seconds)
    try:
        video = _upload_video(status, storage_path, provider, video_storage,
                              _renewing(on_progress, renew))  # fmt: skip

        def keep_alive() -> None:  # the poster may take ffmpeg a few seconds
            renew()  # at most once a second, as while the bytes flow
            on_progress("finishing", {"storage_path": storage_path})

        companions = _store_poster_and_captions(
            status, video, provider=provider, video_storage=video_storage, script=script,
            language=language, poster_path=poster_path, captions_path=captions_path,
            keep_alive=keep_alive,
        )  # fmt: skip
    except BaseException as error:
        # Nothing references the objects: delete them now, or leave the deletes to the ledger.
        _discard(paths, error)
        raise
    return StoredUnit(video=video, companions=companions)


def _upload_video(status, storage_path, provider, video_storage, on_progress) -> StoredVideo:
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
            key_checked=True,
            size_checked_by_caller=True,  # with the poster's and captions' (_check_stored)
        )
    finally:
        download.close()


def _store_poster_and_captions(
    status: RenderStatus, video: StoredVideo, *, provider, video_storage: VideoStorage,
    script: str, language: str, poster_path: str, captions_path: str, keep_alive,
) -> dict:  # fmt: skip
    """Make the poster and captions and upload them, side by side: the poster on a thread of
    `_poster_lane`, the captions here (each is a download from the provider, or ffmpeg, then
    one PUT). `keep_alive` renews the leases (the job's and the uploads') before. Returns
    only when both are done, failed or not: nothing is discarded while an upload runs."""
    duration = video.duration_seconds or status.duration_seconds
    keep_alive()
    frame_source = video_storage.frame_source(video.storage_path)

    def store_poster() -> dict:
        poster = make_poster(provider=provider, thumbnail_url=status.thumbnail_url,
                             frame_source=frame_source, duration_seconds=duration,
                             label=video.storage_path)  # fmt: skip
        return upload_poster_and_captions(poster, None, poster_path=poster_path,
                                          captions_path=captions_path,
                                          video_storage=video_storage,
                                          checked_by_caller=True)  # fmt: skip

    poster_done = _poster_lane().submit(store_poster)
    try:
        captions = make_captions(provider=provider, caption_url=status.caption_url,
                                 script=script, language=language, duration_seconds=duration,
                                 label=video.storage_path)  # fmt: skip
        data = upload_poster_and_captions(None, captions, poster_path=poster_path,
                                          captions_path=captions_path,
                                          video_storage=video_storage,
                                          checked_by_caller=True)  # fmt: skip
    finally:
        wait([poster_done])
    data.update(poster_done.result())
    keep_alive()
    _check_stored(video_storage, video, {poster_path: data["posterSize"],
                                         captions_path: data["captionsSize"]})  # fmt: skip
    return data


_LANE_LOCK = threading.Lock()
_LANE: tuple[int, ThreadPoolExecutor] | None = None
#: Posters made at once in one process (one per copy in flight; more wait their turn).
POSTER_LANE_THREADS = 8


def _poster_lane() -> ThreadPoolExecutor:
    """This process's threads for posters (kept, with their connections and storage
    clients; a forked process makes its own)."""
    global _LANE
    with _LANE_LOCK:
        if _LANE is None or _LANE[0] != os.getpid():
            _LANE = (os.getpid(), ThreadPoolExecutor(max_workers=POSTER_LANE_THREADS,
                                                     thread_name_prefix="poster"))  # fmt: skip
        return _LANE[1]


def _check_stored(video_storage: VideoStorage, video: StoredVideo, companions: dict) -> None:
    """What storage holds at the unit's three keys, in one listing: each exactly as sent (a
    look-up after each upload was three requests)."""
    sizes = {video.storage_path: video.file_size, **companions}
    held = video_storage.stored_sizes(list(sizes))
    wrong = {path: held.get(path) for path, size in sizes.items() if held.get(path) != size}
    if video.storage_path in wrong:
        raise InvalidVideo(f"Storage holds {wrong[video.storage_path]} bytes of the video but "
                           f"{video.file_size} were sent to {video.storage_path}.")  # fmt: skip
    if wrong:
        raise StorageUnavailable(
            f"Storage does not hold what was sent: {wrong} (bytes held; expected {sizes})."
        )


def _discard(paths: list[str], error: BaseException) -> None:
    for path in paths:
        try:
            ledger.discard_upload(path, reason="upload did not complete")
        except Exception as failure:  # the entry stays: the sweeper gives it up when its lease ends
            logger.error("discard of %s after %s failed; the ledger's sweeper will delete it: %s",
                         path, error.__class__.__name__, failure)  # fmt: skip


def _lease_renewer(paths: list[str], owner: str, lease_seconds: float | None):
    """Renews the owner's leases on all the unit's pending uploads, at most once a second
    (or now, with `force`)."""
    last = [time.monotonic()]

    def renew(force: bool = False) -> None:
        if owner and (force or time.monotonic() - last[0] >= RENEW_EVERY_SECONDS):
            last[0] = time.monotonic()
            ledger.renew_upload_leases(paths, owner=owner, lease_seconds=lease_seconds
                                       or settings.VIDEO_JOB_LEASE_SECONDS)  # fmt: skip

    return renew


def _renewing(on_progress: ProgressCallback, renew) -> ProgressCallback:
    """`on_progress`, plus the unit's upload leases renewed as the video's bytes flow."""

    def progress(stage: str, details: dict) -> None:
        if stage == "copying":
            renew()
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
    companions: dict | None = None,
) -> dict:
    """The result in the original system's shape; `offline_preview`: rendered by the offline
    renderer (a preview made on this machine, not an avatar video from the provider);
    `companions`: the poster and captions fields, beside the seed's."""
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
    if storage_metadata:  # where the object is: the row records it (its column too)
        result["storageBucket"] = storage_metadata["storageBucket"]
    for key in MEASURED_FIELDS:  # duration_seconds is set above (the provider's as a fallback)
        result.setdefault(key, storage_metadata.get(key) if storage_metadata else None)
    if stored is not None:
        result.update(companions or {})
    return result


def content_data_from_result(result: dict, *, script: str) -> dict:
    """The fields of a result that a ContentItem keeps (cleaned again on save)."""
    data = {key: result.get(key) for key in ("videoUrl", "videoId", *STORAGE_METADATA_FIELDS,
                                             *MEASURED_FIELDS)}  # fmt: skip
    if result.get("storageBucket"):
        data["storageBucket"] = result["storageBucket"]
    data.update({key: value for key, value in result.items()
                 if key in POSTER_FIELDS or key in CAPTIONS_FIELDS})  # fmt: skip
    data["script"] = script
    data["metadata"] = {
        "heygen_video_url": result["metadata"]["heygen_video_url"],
        "storage_fallback": result["fallback"],
    }
    if result["metadata"].get("offline_preview"):
        data["metadata"]["offline_preview"] = True
    return data
