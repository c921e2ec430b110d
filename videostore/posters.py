"""Posters: a JPEG still of a video, from the provider or taken with ffmpeg.

ffmpeg is the binary of the imageio-ffmpeg wheel (the offline renderer's). It reads the
stored video itself (a local file or a short-lived signed URL: it fetches only the bytes it
needs), so a poster shows what was stored. When no frame can be taken from a valid video
(ffmpeg failing or missing), the poster is a placeholder card: a stored video is never lost
for want of a still, and its `posterSource` says "placeholder" so a backfill can try again.
"""

import logging
import re
import subprocess
from pathlib import Path

import imageio_ffmpeg

logger = logging.getLogger(__name__)

JPEG_TYPE = "image/jpeg"
#: A provider's thumbnail larger than this is not a poster.
POSTER_MAX_BYTES = 10 * 1024 * 1024
#: The still is taken this far into the video (or at its middle when it is shorter).
FRAME_AT_SECONDS = 1.0
#: Two tries (the frame, then the first frame) stay well within a job's lease (60 s).
FFMPEG_TIMEOUT_SECONDS = 20
PLACEHOLDER_PATH = Path(__file__).with_name("placeholder_poster.jpg")


class PosterError(RuntimeError):
    """No JPEG could be made from this input."""


def is_jpeg(data: bytes) -> bool:
    """A JPEG by its bytes: the SOI marker and a frame marker after it."""
    return len(data) > 4 and data[:3] == b"\xff\xd8\xff"


def _ffmpeg_jpeg(input_args: list[str], *, stdin: bytes | None = None) -> bytes:
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
        *input_args, "-frames:v", "1", "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "3",
        "pipe:1",
    ]  # fmt: skip
    if stdin is not None:
        command.remove("-nostdin")
    try:
        result = subprocess.run(command, input=stdin, capture_output=True,
                                timeout=FFMPEG_TIMEOUT_SECONDS)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired, RuntimeError) as error:
        raise PosterError(f"ffmpeg could not run: {error.__class__.__name__}") from error
    if result.returncode != 0 or not is_jpeg(result.stdout):
        reason = result.stderr.decode("utf-8", "replace").strip()[-300:] or "no image"
        reason = re.sub(r"\?\S*", "?…", reason)  # a signed URL's query never reaches a log
        raise PosterError(f"ffmpeg made no JPEG: {reason}")
    return result.stdout


def frame_jpeg(source: str, *, at_seconds: float) -> bytes:
    """A JPEG of the video's frame at `at_seconds`; `source` is a file path or a URL."""
    return _ffmpeg_jpeg(["-ss", f"{max(0.0, at_seconds):.3f}", "-i", source])


def image_as_jpeg(data: bytes) -> bytes:
    """An image (a provider's PNG or WebP thumbnail) as a JPEG; a JPEG as it is."""
    if is_jpeg(data):
        return data
    return _ffmpeg_jpeg(["-i", "pipe:0"], stdin=data)


def placeholder_jpeg() -> bytes:
    """The poster of a video no still could be taken from."""
    return PLACEHOLDER_PATH.read_bytes()


def video_poster(
    source: str, *, duration_seconds: float | None, label: str = ""
) -> tuple[bytes, str]:
    """(JPEG, how it was made): a frame of the stored video ("frame"), the first frame when
    that fails, else the placeholder ("placeholder"). `label` names the video in logs."""
    first = FRAME_AT_SECONDS
    if duration_seconds:
        first = min(FRAME_AT_SECONDS, float(duration_seconds) / 2)
    error: PosterError | None = None
    for at_seconds in dict.fromkeys((first, 0.0)):
        try:
            return frame_jpeg(source, at_seconds=at_seconds), "frame"
        except PosterError as failure:
            error = failure
    logger.warning("no frame could be taken from %s; its poster is the placeholder: %s",
                   label or "the video", error)  # fmt: skip
    return placeholder_jpeg(), "placeholder"
