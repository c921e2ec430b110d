"""The offline renderer: right-to-left scripts on the right margin, left-to-right ones on the
left (read from the rendered pixels), and its videos labelled offline previews in their data."""

import subprocess

import imageio_ffmpeg
import pytest

from avatars.inline import run_job_inline
from avatars.pipeline import build_result, content_data_from_result
from avatars.providers.base import RenderStatus
from avatars.providers.offline import is_right_to_left, render_script_video
from avatars.services import avatar_video_request
from tests.builders import make_topic, stored_keys
from topics.cleaners import clean_content_data

WIDTH, HEIGHT = 320, 180
HEBREW = "שלום לכולם, היום נלמד איך צמחים הופכים אור לסוכר"
ENGLISH = "Hello class, today we learn how plants turn light into sugar"


def text_pixels_per_half(path) -> tuple[int, int]:
    """Light (text) pixels in the left and right halves of a frame, as raw 8-bit gray."""
    frame = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-ss", "1",
         "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert len(frame) == WIDTH * HEIGHT
    left = right = 0
    for row in range(HEIGHT):
        line = frame[row * WIDTH : (row + 1) * WIDTH]
        left += sum(1 for value in line[: WIDTH // 2] if value > 160)  # background is ~54
        right += sum(1 for value in line[WIDTH // 2 :] if value > 160)
    return left, right


@pytest.mark.parametrize(
    "script, right_to_left",
    [
        (HEBREW, True),
        ("مرحبا بالطلاب", True),  # Arabic
        ("1. שלום", True),  # digits and punctuation have no direction: the first letter decides
        (ENGLISH, False),
        ("Shalom: שלום", False),
        ("123 ...", False),
    ],
)
def test_the_first_strong_letter_decides_the_direction(script, right_to_left):
    assert is_right_to_left(script) is right_to_left


def test_a_hebrew_script_is_drawn_on_the_right(tmp_path):
    path = render_script_video(HEBREW, tmp_path / "he.mp4", width=WIDTH, height=HEIGHT,
                               seconds=2)  # fmt: skip
    left, right = text_pixels_per_half(path)
    assert right > 200 and right > 5 * left


def test_an_english_script_is_drawn_on_the_left(tmp_path):
    path = render_script_video(ENGLISH, tmp_path / "en.mp4", width=WIDTH, height=HEIGHT,
                               seconds=2)  # fmt: skip
    left, right = text_pixels_per_half(path)
    assert left > 200 and left > 5 * right


def rendered(provider_video_id: str = "local_abc") -> RenderStatus:
    return RenderStatus(provider_video_id=provider_video_id, status="completed",
                        video_url="https://files2.heygen.ai/x.mp4")  # fmt: skip


def test_an_offline_result_is_labelled_in_the_item_metadata():
    result = build_result(rendered(), language="he", stored=None, offline_preview=True)
    data = content_data_from_result(result, script="שלום")
    assert result["metadata"]["offline_preview"] is True
    assert clean_content_data("avatar_video", data)["metadata"]["offline_preview"] is True


def test_a_provider_result_carries_no_offline_label():
    result = build_result(rendered("heygen_1"), language="en", stored=None)
    assert result["metadata"]["offline_preview"] is False
    assert "offline_preview" not in content_data_from_result(result, script="x")["metadata"]


@pytest.mark.django_db(transaction=True)
def test_a_video_from_the_offline_provider_is_stored_as_an_offline_preview(settings, bucket_keys):
    settings.AVATAR_PROVIDER = "local"
    settings.OFFLINE_VIDEO_WIDTH, settings.OFFLINE_VIDEO_HEIGHT = WIDTH, HEIGHT
    job = avatar_video_request(topic=make_topic(), script="Offline lesson", enqueue_submit=False)
    job = run_job_inline(job.pk, poll_interval=0.05)
    item = job.content_item
    item.refresh_from_db()
    assert job.state == "stored" and bucket_keys() == stored_keys(item)
    assert item.content_data["metadata"]["offline_preview"] is True
