"""The players in chromium: the poster shows before the video plays, and the captions track
loads (from the studio's origin) with the script's text."""

import subprocess

import imageio_ffmpeg

from avatars.inline import run_job_inline
from avatars.services import avatar_video_request
from tests.browser import test_studio_browser as studio_browser
from tests.browser.test_studio_browser import log_in, pytestmark, shot  # noqa: F401
from tests.builders import make_topic
from tests.conftest import BROWSER_POLL_MS
from topics.models import ContentItem

# The studio's browser fixtures (a page, a private bucket, no inline tasks).
page = studio_browser.page
private_bucket = studio_browser.private_bucket
no_inline_tasks = studio_browser.no_inline_tasks

SCRIPT = "Plants turn light into sugar. Leaves hold chlorophyll."


def stored_item(script: str = SCRIPT, language: str = "en") -> ContentItem:
    topic = make_topic("Photosynthesis", language=language)
    job = avatar_video_request(topic=topic, script=script, enqueue_submit=False)
    assert run_job_inline(job.pk, poll_interval=0.01).state == "stored"
    return ContentItem.objects.get(pk=job.content_item_id)


def mean_gray(png: bytes) -> float:
    """The average brightness (0-255) of a screenshot."""
    raw = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
         "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"],
        input=png, capture_output=True, check=True,
    ).stdout  # fmt: skip
    return sum(raw) / len(raw)


CUES = """() => {
  const video = document.querySelector('video');
  const track = video && video.textTracks[0];
  return track && track.cues && track.cues.length
    ? Array.from(track.cues).map((cue) => cue.text) : null;
}"""


def test_the_poster_shows_before_the_video_plays(page, live_server, fake_heygen, private_bucket):
    item = stored_item()
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{item.topic_id}/")
    # The card shows the poster (loaded from storage) where the player will open.
    thumbnail = page.locator(f"#item-{item.pk} img[data-role=poster-image]")
    page.wait_for_function(
        "(el) => el.complete && el.naturalWidth > 0",
        arg=thumbnail.element_handle(),
        polling=BROWSER_POLL_MS,
    )
    poster_src = thumbnail.get_attribute("src")
    assert "X-Amz-Signature=" in poster_src and poster_src.split("?")[0].endswith(".jpg")

    # The player, before Play: nothing of the video is fetched (preload none), and what it
    # shows is the poster (the render's blue card), not a black box.
    page.goto(f"{live_server.url}/topics/{item.topic_id}/?play={item.pk}")
    video = page.locator("video")
    assert video.get_attribute("preload") == "none"
    assert video.get_attribute("poster").split("?")[0] == poster_src.split("?")[0]
    page.wait_for_timeout(500)
    assert page.evaluate("document.querySelector('video').readyState") == 0
    assert page.evaluate("document.querySelector('video').paused") is True
    assert mean_gray(video.screenshot()) > 30  # black would be 0
    shot(page, "player-poster")


def test_the_captions_track_loads_with_the_script_text(
    page, live_server, fake_heygen, private_bucket
):
    fake_heygen.set_fault("no_captions")  # made here from the script
    item = stored_item()
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{item.topic_id}/")
    page.click(f"#item-{item.pk} [data-action=play]")  # the player opened by the page's script
    track = page.locator("video track")
    assert track.get_attribute("kind") == "captions"
    assert track.get_attribute("srclang") == "en"
    page.wait_for_function(CUES, polling=BROWSER_POLL_MS)
    assert page.evaluate(CUES) == ["Plants turn light into sugar.", "Leaves hold chlorophyll."]
    assert page.evaluate("document.querySelector('video').textTracks[0].mode") == "showing"


def test_heygen_captions_load_in_the_server_rendered_player(
    page, live_server, fake_heygen, private_bucket
):
    item = stored_item("שלום לכולם. היום נלמד על צמחים.", language="he")
    assert item.content_data["captionsSource"] == "provider"
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{item.topic_id}/?play={item.pk}")
    assert page.locator("video track").get_attribute("srclang") == "he"
    page.wait_for_function(CUES, polling=BROWSER_POLL_MS)
    assert page.evaluate(CUES) == ["שלום לכולם.", "היום נלמד על צמחים."]
