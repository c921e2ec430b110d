"""A stored video's poster and captions: made, then stored beside it as one unit.

The poster is the provider's thumbnail (`thumbnail_url`, made a JPEG) when it gives one, else
a frame ffmpeg takes from the stored video (else a placeholder: videostore.posters). The
captions are the provider's (`caption_url`, WebVTT or SRT made WebVTT) when it made them,
else cues made from the script, timed over the video's duration (videostore.captions). A
provider file that cannot be fetched or read is not fatal: the poster or captions are then
made here, and the log says why.

Storing them is the pipeline's job (avatars/pipeline.py, avatars/backfill.py): at keys
registered in the upload ledger before any byte, in the video's bucket.
"""

import logging
from dataclasses import dataclass

from avatars.errors import DownloadError
from avatars.providers.base import VideoProvider
from avatars.providers.download import redact
from topics.objects import captions_data, poster_data
from videostore.captions import (
    CAPTIONS_MAX_BYTES,
    VTT_TYPE,
    InvalidCaptions,
    as_webvtt,
    script_to_vtt,
)
from videostore.posters import JPEG_TYPE, POSTER_MAX_BYTES, PosterError, image_as_jpeg, video_poster
from videostore.storage import VideoStorage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Poster:
    jpeg: bytes
    source: str  # "provider" | "frame" | "placeholder"


@dataclass(frozen=True)
class Captions:
    vtt: str
    source: str  # "provider" | "script"
    language: str


def fetch_provider_file(provider: VideoProvider, url: str, *, max_bytes: int) -> bytes:
    """A provider's small file (thumbnail, captions), through the same guarded download as
    its videos (allowed hosts only), read up to `max_bytes`."""
    download = provider.open_download(url)
    try:
        data = bytearray()
        for chunk in download.iter_chunks(64 * 1024):
            data += chunk
            if len(data) > max_bytes:
                raise DownloadError(f"The file at {redact(url)} is larger than {max_bytes} bytes.")
        return bytes(data)
    finally:
        download.close()


def make_poster(
    *, provider: VideoProvider | None, thumbnail_url: str | None, frame_source: str,
    duration_seconds: float | None, label: str,
) -> Poster:  # fmt: skip
    """The provider's thumbnail as a JPEG, else a frame of the stored video."""
    if thumbnail_url and provider is not None:
        try:
            data = fetch_provider_file(provider, thumbnail_url, max_bytes=POSTER_MAX_BYTES)
            return Poster(image_as_jpeg(data), "provider")
        except (DownloadError, PosterError) as error:
            logger.warning("the provider's thumbnail of %s could not be used (%s); a frame of "
                           "the video is taken instead", label, error)  # fmt: skip
    jpeg, source = video_poster(frame_source, duration_seconds=duration_seconds, label=label)
    return Poster(jpeg, source)


def make_captions(
    *, provider: VideoProvider | None, caption_url: str | None, script: str, language: str,
    duration_seconds: float | None, label: str,
) -> Captions:  # fmt: skip
    """The provider's captions as WebVTT, else cues made from the script."""
    if caption_url and provider is not None:
        try:
            data = fetch_provider_file(provider, caption_url, max_bytes=CAPTIONS_MAX_BYTES)
            return Captions(as_webvtt(data), "provider", language)
        except (DownloadError, InvalidCaptions) as error:
            logger.warning("the provider's captions of %s could not be used (%s); captions are "
                           "made from the script instead", label, error)  # fmt: skip
    return Captions(script_to_vtt(script, duration_seconds or 0), "script", language)


def upload_poster_and_captions(
    poster: Poster | None, captions: Captions | None, *, poster_path: str, captions_path: str,
    video_storage: VideoStorage, checked_by_caller: bool = False,
) -> dict:  # fmt: skip
    """Upload them at their registered keys; their content_data fields. StorageUnavailable
    when either upload fails (the caller discards every key it registered).

    `checked_by_caller`: the caller found both keys unused before and checks what storage
    holds after (one listing each for the whole unit, `VideoStorage.stored_sizes`) instead
    of a look-up per file before and after."""
    data = {}
    checks = {"key_checked": checked_by_caller, "size_checked_by_caller": checked_by_caller}
    if poster is not None:
        stored = video_storage.upload_bytes(poster.jpeg, storage_path=poster_path,
                                            content_type=JPEG_TYPE, **checks)  # fmt: skip
        data.update(poster_data(stored, source=poster.source))
    if captions is not None:
        stored = video_storage.upload_bytes(captions.vtt.encode("utf-8"),
                                            storage_path=captions_path,
                                            content_type=f"{VTT_TYPE}; charset=utf-8",
                                            **checks)  # fmt: skip
        data.update(captions_data(stored, source=captions.source, language=captions.language))
    return data
