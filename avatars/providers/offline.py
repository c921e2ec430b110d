"""The offline video provider's core: a script becomes a real short MP4 on this machine.

H.264 video with a title card showing the script, AAC audio, `+faststart` so browsers can
play it while it streams. Uses the ffmpeg binary shipped in the imageio-ffmpeg wheel, so a
newcomer without a HeyGen key still gets a real video.
"""

import logging
import subprocess
import tempfile
import textwrap
import unicodedata
from pathlib import Path

import imageio_ffmpeg

logger = logging.getLogger(__name__)

WORDS_PER_SECOND = 2.5


class OfflineRenderError(RuntimeError):
    """ffmpeg could not render the video."""


def script_duration_seconds(script: str, max_seconds: int) -> int:
    """Roughly how long a narrator takes to read the script, within [2, max_seconds]."""
    words = len(script.split())
    return max(2, min(max_seconds, round(words / WORDS_PER_SECOND)))


def is_right_to_left(text: str) -> bool:
    """Does the text start (first strong character) in a right-to-left script, such as Hebrew
    or Arabic? The Unicode bidi rule for a paragraph's direction (P2, P3)."""
    for character in text:
        direction = unicodedata.bidirectional(character)
        if direction in ("R", "AL"):
            return True
        if direction == "L":
            return False
    return False


def _text_position(script: str, width: int) -> str:
    """drawtext options placing the card's lines on the margin where a reader of the script
    starts: the left one, or for right-to-left scripts the right one (each line aligned)."""
    margin = max(16, width // 20)
    if is_right_to_left(script):
        return f":text_align=right:x=w-tw-{margin}:y=(h-th)/2"
    return f":text_align=left:x={margin}:y=(h-th)/2"


def _card_text(script: str, width: int) -> str:
    columns = max(20, width // 28)
    lines = textwrap.wrap(" ".join(script.split()), columns)[:8]
    if len(textwrap.wrap(" ".join(script.split()), columns)) > 8:
        lines[-1] = lines[-1].rstrip() + " …"
    return "\n".join(lines) or " "


def render_script_video(
    script: str,
    output_path: Path,
    *,
    width: int = 1280,
    height: int = 720,
    seconds: int | None = None,
    max_seconds: int = 20,
    extra_args: list[str] | None = None,
) -> Path:
    """Render `script` into an MP4 at `output_path` and return the path."""
    duration = seconds or script_duration_seconds(script, max_seconds)
    fontsize = max(14, height // 20)
    with tempfile.TemporaryDirectory(prefix="offline-render-") as tmp:
        # The script goes through a file: no shell or filter-graph escaping of user text.
        text_file = Path(tmp) / "card.txt"
        text_file.write_text(_card_text(script, width), encoding="utf-8")
        drawtext = (
            f"drawtext=textfile='{text_file.as_posix()}':fontcolor=white:fontsize={fontsize}"
            f":line_spacing=8{_text_position(script, width)}"
        )
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"color=c=0x1f3a5f:s={width}x{height}:d={duration}:r=25",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={duration}",
            "-vf", drawtext,
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k",
            "-shortest", "-movflags", "+faststart",
            *(extra_args or []),
            str(output_path),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise OfflineRenderError(f"ffmpeg failed to render the video: {result.stderr.strip()}")
    logger.info(
        "offline video rendered: %s (%s s)",
        output_path,
        duration,
        extra={"seconds": duration, "path": str(output_path)},
    )
    return output_path
