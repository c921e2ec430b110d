"""The one status of a video (studio/status.py): every item status x job state gives exactly
one status, and the right one."""

from datetime import UTC, datetime, timedelta

import pytest

from avatars.models import VideoJob
from studio.status import KINDS, VideoStatus, format_elapsed, video_status
from topics.models import ContentItem

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
Status = ContentItem.Status
State = VideoJob.State
STORED_DATA = {"script": "Hi", "videoUrl": "https://x/y.mp4", "fileName": "a.mp4",
               "storagePath": "avatar_videos/a.mp4"}  # fmt: skip


def item(status: str, *, stored: bool = False, url: bool = False, **data) -> ContentItem:
    content = dict(STORED_DATA) if stored else {"script": "Hi"}
    if url:
        content["videoUrl"] = "https://files2.heygen.ai/v.mp4"
    content.update(data)
    return ContentItem(
        pk=1,
        content_type=ContentItem.ContentType.AVATAR_VIDEO,
        status=status,
        storage_path="avatar_videos/a.mp4" if stored else "",
        content_data=content,
    )


def job(state: str | None, **fields) -> VideoJob | None:
    if state is None:
        return None
    defaults = {"queued_at": NOW - timedelta(minutes=5), "state_changed_at": NOW - timedelta(
        minutes=2), "max_attempts": 3}  # fmt: skip
    return VideoJob(pk=7, state=state, **{**defaults, **fields})


ITEMS = {
    "new": item(Status.GENERATING),
    "stored": item(Status.READY, stored=True),
    "fallback": item(Status.NEEDS_STORAGE, url=True),
    "legacy": item(Status.READY, url=True),
    "needs_regeneration": item(Status.NEEDS_REGENERATION),
    "failed": item(Status.FAILED),
    "draft": item(Status.DRAFT),
    "ready_without_any_url": item(Status.READY),
}
JOB_STATES = [None, *State.values]


@pytest.mark.parametrize("item_name", ITEMS)
@pytest.mark.parametrize("state", JOB_STATES)
def test_every_item_and_job_combination_has_exactly_one_status(item_name, state):
    status = video_status(ITEMS[item_name], job(state, last_error="boom"), now=NOW)
    assert isinstance(status, VideoStatus)
    assert status.kind in KINDS and status.label
    # Active while a job runs, and while a stored job's save is not yet seen on its item.
    read_before_the_save = item_name == "new" and state == State.STORED
    assert status.active == (state in VideoJob.ACTIVE_STATES or read_before_the_save)
    # A stored video never reads as anything else once no job runs.
    if item_name == "stored" and not status.active:
        assert status.kind == "stored" and status.label == "Stored"


@pytest.mark.parametrize("state", [State.QUEUED, State.RENDERING, State.UPLOADING])
@pytest.mark.parametrize("item_name", ["stored", "fallback", "legacy"])
def test_a_video_being_regenerated_keeps_its_current_video(item_name, state):
    status = video_status(ITEMS[item_name], job(state), now=NOW)
    assert status.kind == "regenerating"
    assert status.label == "Regenerating: the current video stays until the new one is stored"
    assert status.step


def test_queued_shows_the_position_in_the_line():
    status = video_status(ITEMS["new"], job(State.QUEUED), now=NOW, queue_position=3)
    assert status.label == "Waiting for a render slot (position 3)"


def test_a_queued_job_waiting_to_retry_says_when_and_why():
    retry = job(State.QUEUED, attempts=1, next_attempt_at=NOW + timedelta(minutes=1),
                last_error="HeyGen is busy")  # fmt: skip
    status = video_status(ITEMS["new"], retry, now=NOW)
    assert status.kind == "retrying"
    assert status.label == "Retrying at 2026-12-01 12:01 UTC (attempt 2 of 3): HeyGen is busy"


def test_rendering_shows_the_time_in_the_step():
    assert video_status(ITEMS["new"], job(State.RENDERING), now=NOW).label == "Rendering (2 min)"


def test_copying_shows_the_percentage():
    copying = job(State.UPLOADING, bytes_total=200, bytes_copied=90)
    status = video_status(ITEMS["new"], copying, now=NOW)
    assert (status.label, status.percent) == ("Copying to storage (45%)", 45)


def test_waiting_for_storage_names_the_provider_links_expiry():
    fallback = job(State.FALLBACK, provider_url_expires_at=NOW + timedelta(days=7))
    status = video_status(ITEMS["fallback"], fallback, now=NOW)
    assert status.label == "Waiting for storage: provider link until 2026-12-08 12:00 UTC"
    expired = job(State.FALLBACK, provider_url_expires_at=NOW - timedelta(seconds=1))
    assert video_status(ITEMS["fallback"], expired, now=NOW).kind == "needs_regeneration"


def test_failed_gives_the_reason_and_the_next_step():
    status = video_status(ITEMS["failed"], job(State.FAILED, last_error="Script refused"),
                          now=NOW)  # fmt: skip
    assert status.label == "Failed: Script refused" and "regenerate" in status.next_step


def test_a_failed_regeneration_of_a_stored_video_keeps_it_stored():
    status = video_status(ITEMS["stored"], job(State.FAILED, last_error="quota"), now=NOW)
    assert status.label == "Stored" and "quota" in status.next_step


def test_missing_file_and_legacy_link():
    missing = video_status(ITEMS["needs_regeneration"], None, now=NOW)
    assert missing.label == "Needs regeneration: the file is missing"
    legacy = video_status(ITEMS["legacy"], None, now=NOW)
    assert legacy.label == "Not stored yet (legacy link)"
    assert "backfill_avatar_videos" in legacy.next_step
    blocked = video_status(ITEMS["legacy"], None, now=NOW, legacy_link_allowed=False)
    assert "AVATAR_DOWNLOAD_ALLOWED_HOSTS" in blocked.next_step


def test_elapsed_time_reads_like_a_person_would_say_it():
    assert [format_elapsed(s) for s in (5, 125, 3900)] == ["5 s", "2 min", "1 h 5 min"]


def test_an_item_read_just_before_its_jobs_save_is_still_saving_not_interrupted():
    """The job ends stored in the item's save (one transaction); a page that read the item
    before that commit and the job after it sees a generating item beside a stored job: still
    finishing (the page keeps polling), never "Interrupted"."""
    status = video_status(ITEMS["new"], job(State.STORED), now=NOW)
    assert status.kind == "copying" and status.active
    assert video_status(ITEMS["new"], job(State.FAILED), now=NOW).kind == "failed"
    assert video_status(ITEMS["new"], None, now=NOW).kind == "interrupted"
