"""Every stored video has a poster (JPEG) and captions (WebVTT), stored with it as one unit:
against the S3 server and the fake HeyGen, faults injected for real, the bucket and the rows
asserted afterwards."""

import json
from io import StringIO
from urllib.parse import parse_qs, unquote

import pytest

from avatars import leases
from avatars.inline import run_job_inline
from avatars.promotion import promote_fallbacks
from avatars.services import avatar_video_regenerate, avatar_video_request
from tests.builders import log_in_author, make_topic, run_command, stored_keys
from tests.conftest import BUCKET
from tests.faults import failing_content_item_writes
from topics.models import ContentItem
from topics.objects import stored_objects
from topics.services import content_item_delete
from videostore import ledger
from videostore.captions import vtt_cue_texts
from videostore.models import UploadLedgerEntry

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = "Plants turn light into sugar. They need water too! Do you know why?"
HEBREW = "צמחים הופכים אור לסוכר. הם צריכים גם מים!"
#: Uploads of posters and of captions, as the client sends them (path-style keys).
POSTER_PUT = rb"PUT /[^ ]*\.jpg[ ?]"
CAPTIONS_PUT = rb"PUT /[^ ]*\.vtt[ ?]"


def generate(script: str = SCRIPT, language: str = "en") -> ContentItem:
    topic = make_topic(language=language)
    job = avatar_video_request(topic=topic, script=script, enqueue_submit=False)
    run_job_inline(job.pk, poll_interval=0.01)
    return ContentItem.objects.get(pk=job.content_item_id)


def stored_body(s3_server, key: str) -> tuple[bytes, str]:
    answer = s3_server.client().get_object(Bucket=BUCKET, Key=key)
    return answer["Body"].read(), answer["ContentType"]


def assert_unit_stored(item: ContentItem, s3_server, bucket_keys) -> tuple[bytes, str]:
    """The row points at exactly the three objects in the bucket, each as described; returns
    the poster's bytes and the captions' text."""
    item.refresh_from_db()
    data = item.content_data
    assert item.status == ContentItem.Status.READY
    assert [stored.kind for stored in stored_objects(item)] == ["video", "poster", "captions"]
    assert bucket_keys() == stored_keys(item)
    assert not UploadLedgerEntry.objects.exists()
    poster, poster_type = stored_body(s3_server, data["posterPath"])
    captions, captions_type = stored_body(s3_server, data["captionsPath"])
    assert poster[:3] == b"\xff\xd8\xff" and poster_type == "image/jpeg"
    assert captions.startswith(b"WEBVTT") and captions_type.startswith("text/vtt")
    assert (data["posterSize"], data["captionsSize"]) == (len(poster), len(captions))
    assert item.poster_path == data["posterPath"] and item.captions_path == data["captionsPath"]
    # Fresh keys beside the video's; the seed's six fields keep their names and meaning.
    stem = data["storagePath"].removesuffix(".mp4")
    assert data["posterPath"].startswith(stem + "_") and data["posterPath"].endswith(".jpg")
    assert data["captionsPath"].startswith(stem + "_") and data["captionsPath"].endswith(".vtt")
    for field in ("fileUrl", "fileName", "fileSize", "fileType", "storagePath", "uploadedAt"):
        assert data[field]
    assert data["fileType"] == "video/mp4" and item.storage_path == data["storagePath"]
    return poster, captions.decode()


# --- the offline provider and HeyGen --------------------------------------------------------


def test_the_offline_provider_stores_a_frame_poster_and_captions_from_the_script(
    settings, s3_server, bucket_keys
):
    settings.AVATAR_PROVIDER = "local"
    settings.OFFLINE_VIDEO_WIDTH, settings.OFFLINE_VIDEO_HEIGHT = 320, 180
    item = generate()
    _, captions = assert_unit_stored(item, s3_server, bucket_keys)
    assert item.content_data["posterSource"] == "frame"
    assert item.content_data["captionsSource"] == "script"
    assert item.content_data["captionsLanguage"] == "en"
    assert vtt_cue_texts(captions) == [
        "Plants turn light into sugar.",
        "They need water too!",
        "Do you know why?",
    ]


def test_heygen_thumbnail_and_srt_captions_are_stored_as_jpeg_and_webvtt(
    fake_heygen, s3_server, bucket_keys
):
    item = generate()
    poster, captions = assert_unit_stored(item, s3_server, bucket_keys)
    assert item.content_data["posterSource"] == "provider"
    assert item.content_data["captionsSource"] == "provider"
    assert poster == fake_heygen.thumbnail(SCRIPT)
    # The SRT's cues, converted: dots in the timings, the same text.
    assert "00:00:00.000 --> " in captions and "," not in captions.split("\n")[3]
    assert " ".join(vtt_cue_texts(captions)) == SCRIPT


def test_heygen_webvtt_captions_are_kept(fake_heygen, s3_server, bucket_keys):
    fake_heygen.set_fault("vtt_captions")
    item = generate()
    _, captions = assert_unit_stored(item, s3_server, bucket_keys)
    assert item.content_data["captionsSource"] == "provider"
    assert captions == fake_heygen.captions(SCRIPT, vtt=True).decode()


def test_without_heygen_captions_or_thumbnail_they_are_made_here(
    fake_heygen, s3_server, bucket_keys
):
    fake_heygen.set_fault("no_captions")
    fake_heygen.set_fault("no_thumbnail")
    item = generate(HEBREW, language="he")
    _, captions = assert_unit_stored(item, s3_server, bucket_keys)
    assert item.content_data["posterSource"] == "frame"
    assert item.content_data["captionsSource"] == "script"
    assert item.content_data["captionsLanguage"] == "he"
    # Right-to-left text kept exactly as written, split at its sentence ends.
    assert vtt_cue_texts(captions) == ["צמחים הופכים אור לסוכר.", "הם צריכים גם מים!"]


# --- all or nothing -------------------------------------------------------------------------


@pytest.mark.parametrize("refused", [POSTER_PUT, CAPTIONS_PUT], ids=["poster", "captions"])
def test_a_failed_poster_or_captions_upload_leaves_nothing_and_falls_back(
    refused, fake_heygen, storage_link, bucket_keys
):
    storage_link.refuse(refused)
    item = generate()
    assert storage_link.refusals > 0
    item.refresh_from_db()
    # Like a failed video upload: the provider's link is kept, nothing stored, no row
    # pointing at a missing object, nothing pending in the ledger.
    assert item.status == ContentItem.Status.NEEDS_STORAGE
    assert (item.storage_path, item.poster_path, item.captions_path) == ("", "", "")
    assert "posterPath" not in item.content_data and "captionsPath" not in item.content_data
    assert bucket_keys() == []
    assert not UploadLedgerEntry.objects.exists()

    storage_link.refuse(None)
    assert promote_fallbacks() == {"stored": 1, "expired": 0, "failed": 0}
    item.refresh_from_db()
    assert item.status == ContentItem.Status.READY and len(stored_objects(item)) == 3
    assert bucket_keys() == stored_keys(item)


def test_a_poster_upload_failure_without_a_fallback_retries_and_leaves_nothing(
    settings, storage_link, bucket_keys
):
    settings.AVATAR_PROVIDER = "local"  # a file:// render: no provider link to fall back on
    settings.OFFLINE_VIDEO_WIDTH, settings.OFFLINE_VIDEO_HEIGHT = 320, 180
    storage_link.refuse(POSTER_PUT)
    topic = make_topic()
    job = avatar_video_request(topic=topic, script=SCRIPT, enqueue_submit=False, max_attempts=1)
    job = run_job_inline(job.pk, poll_interval=0.01)
    assert job.state == "failed" and "unavailable" in job.last_error.lower()
    item = ContentItem.objects.get(pk=job.content_item_id)
    assert (item.storage_path, item.poster_path, item.captions_path) == ("", "", "")
    assert bucket_keys() == [] and not UploadLedgerEntry.objects.exists()


def test_a_database_failure_at_the_save_discards_all_three(fake_heygen, bucket_keys):
    with failing_content_item_writes():
        generate()
    assert bucket_keys() == []
    assert not UploadLedgerEntry.objects.exists()
    assert ContentItem.objects.get().storage_path == ""


def test_a_copy_interrupted_after_the_poster_discards_the_video_and_poster(
    fake_heygen, bucket_keys, monkeypatch
):
    def interrupted(*args, **kwargs):
        raise SystemExit("worker stopping")

    monkeypatch.setattr("avatars.pipeline.make_captions", interrupted)
    with pytest.raises(SystemExit):
        generate()
    assert bucket_keys() == [] and not UploadLedgerEntry.objects.exists()


def storage_requests(storage_link) -> list[tuple[str, str]]:
    """What the client asked of storage: ("LIST", prefix) or (method, key)."""
    described = []
    for method, target in storage_link.requests:
        path, _, query = target.partition("?")
        if "list-type=2" in query:
            described.append(("LIST", parse_qs(query)["prefix"][0]))
        else:
            described.append((method, unquote(path).removeprefix(f"/{BUCKET}/")))
    return described


def test_a_unit_goes_to_storage_in_five_requests(fake_heygen, storage_link, bucket_keys):
    """One listing finds the three keys unused, three PUTs (the poster's and the captions'
    side by side), one listing checks what storage holds at each (a look-up of each file
    before and after its upload made it nine)."""
    item = generate()
    video, poster, captions = item.storage_path, item.poster_path, item.captions_path
    sent = storage_requests(storage_link)
    assert [what for what, _ in sent] == ["LIST", "PUT", "PUT", "PUT", "LIST"], sent
    puts = [key for what, key in sent if what == "PUT"]
    assert puts[0] == video and set(puts[1:]) == {poster, captions}, sent  # side by side
    for prefix in (sent[0][1], sent[-1][1]):
        assert all(key.startswith(prefix) for key in (video, poster, captions)), sent
    assert bucket_keys() == stored_keys(item)


@pytest.mark.parametrize("changed", ["video", "captions"])
def test_an_object_that_changed_after_its_upload_is_caught_and_the_unit_discarded(
    changed, fake_heygen, s3_server, bucket_keys, monkeypatch
):
    """Storage holding other bytes than were sent (another writer, a truncating gateway) is
    caught by the listing after the uploads: all three objects go, nothing is left pending;
    a changed video fails the attempt, a changed companion keeps the provider's link."""
    from avatars import pipeline

    real = pipeline.upload_poster_and_captions

    def then_changed(poster, captions, **kwargs):
        data = real(poster, captions, **kwargs)
        key = (kwargs["captions_path"] if changed == "captions"
               else kwargs["poster_path"].rpartition("_")[0] + ".mp4")  # fmt: skip
        s3_server.client().put_object(Bucket=BUCKET, Key=key, Body=b"other bytes")
        return data

    monkeypatch.setattr(pipeline, "upload_poster_and_captions", then_changed)
    job = avatar_video_request(topic=make_topic(), script=SCRIPT, enqueue_submit=False,
                               max_attempts=1)  # fmt: skip
    job = run_job_inline(job.pk, poll_interval=0.01)
    item = ContentItem.objects.get(pk=job.content_item_id)
    assert bucket_keys() == [] and not UploadLedgerEntry.objects.exists()
    assert (item.storage_path, item.poster_path, item.captions_path) == ("", "", "")
    if changed == "video":
        assert job.state == "failed" and "bytes of the video" in job.last_error, job.last_error
    else:
        assert job.state == "fallback" and "does not hold what was sent" in job.last_error
        assert item.status == ContentItem.Status.NEEDS_STORAGE


def test_a_taken_key_is_never_overwritten_nor_deleted(
    fake_heygen, s3_server, bucket_keys, monkeypatch
):
    """A unit whose poster key holds an object (keys are random: a bug, or someone else's
    file) is refused before any byte is sent or any key registered: the object is untouched
    and nothing is left behind."""
    taken = "avatar_videos/someone_elses_poster.jpg"
    s3_server.client().put_object(Bucket=BUCKET, Key=taken, Body=b"not ours")
    monkeypatch.setattr("videostore.storage.VideoStorage.new_companion_path",
                        lambda self, video_path, extension: taken)  # fmt: skip
    job = avatar_video_request(topic=make_topic(), script=SCRIPT, enqueue_submit=False,
                               max_attempts=1)  # fmt: skip
    job = run_job_inline(job.pk, poll_interval=0.01)
    assert job.state == "failed" and "taken" in job.last_error, job.last_error
    assert bucket_keys() == [taken]
    assert stored_body(s3_server, taken)[0] == b"not ours"
    assert not UploadLedgerEntry.objects.exists()
    assert ContentItem.objects.get(pk=job.content_item_id).storage_path == ""


# --- delete, regenerate, reconcile ----------------------------------------------------------


def test_delete_removes_all_three_after_commit(fake_heygen, bucket_keys):
    item = generate()
    assert len(bucket_keys()) == 3
    content_item_delete(content_item=item)
    assert bucket_keys() == [] and not UploadLedgerEntry.objects.exists()


def test_regenerate_replaces_all_three_after_commit(fake_heygen, bucket_keys):
    item = generate()
    old = set(stored_keys(item))
    job = avatar_video_regenerate(content_item=item)
    assert run_job_inline(job.pk, poll_interval=0.01).state == "stored"
    new = stored_keys(item)
    assert len(new) == 3 and not old & set(new)
    assert bucket_keys() == new and not UploadLedgerEntry.objects.exists()


def reconcile(*args: str) -> tuple[int, dict]:
    out = StringIO()
    code = run_command("reconcile_storage", "--json", "--grace-seconds", "0", *args, stdout=out)
    return code, json.loads(out.getvalue())


def test_reconcile_sees_all_three_and_a_missing_poster(fake_heygen, s3_server, bucket_keys):
    item = generate()
    code, report = reconcile()
    assert code == 0 and report["consistent"] is True
    assert report["objects_listed"] == 3 and report["rows_checked"] == 3
    assert report["without_poster_or_captions"] == 0

    s3_server.client().delete_object(Bucket=BUCKET, Key=item.poster_path)
    code, report = reconcile()
    assert code != 0 and report["dangling_missing"] == 1
    assert report["samples"]["dangling"][0]["kind"] == "poster"
    code, report = reconcile("--fix")
    assert report["marked_for_backfill"] == 1 and report["consistent"] is True
    item.refresh_from_db()
    assert item.poster_path == "" and "posterPath" not in item.content_data
    assert item.storage_path and item.captions_path  # the video and captions stay

    # The backfill makes a new poster; then all is consistent again.
    assert run_command("backfill_posters_and_captions", stdout=StringIO(),
                       stderr=StringIO()) == 0  # fmt: skip
    item.refresh_from_db()
    assert item.poster_path and bucket_keys() == stored_keys(item)
    assert reconcile()[1]["consistent"] is True


def test_reconcile_deletes_an_orphan_poster(fake_heygen, s3_server, bucket_keys):
    item = generate()
    orphan = item.storage_path.removesuffix(".mp4") + "_deadbeef.jpg"
    s3_server.client().put_object(Bucket=BUCKET, Key=orphan, Body=b"\xff\xd8\xff\xe0x")
    code, report = reconcile("--fix")
    assert report["orphans"] == 1 and report["deleted_orphans"] == 1
    assert bucket_keys() == stored_keys(item)


# --- backfill -------------------------------------------------------------------------------


def legacy_stored_item(s3_server, sample_mp4, key: str, script: str = SCRIPT) -> ContentItem:
    """A video stored before posters and captions: the seed's fields only."""
    from tests.builders import stored_video_data

    body = sample_mp4.read_bytes()
    s3_server.client().put_object(Bucket=BUCKET, Key=key, Body=body)
    data = {**stored_video_data(key, len(body), content=body), "script": script}
    return ContentItem.objects.create(
        topic=make_topic(), content_type="avatar_video", content_data=data,
        status=ContentItem.Status.READY, storage_path=key,
    )  # fmt: skip


def test_backfill_gives_old_videos_a_poster_and_captions_and_resumes(
    s3_server, sample_mp4, bucket_keys
):
    first = legacy_stored_item(s3_server, sample_mp4, "avatar_videos/avatar_old_1.mp4")
    second = legacy_stored_item(s3_server, sample_mp4, "avatar_videos/avatar_old_2.mp4")
    out, err = StringIO(), StringIO()
    assert run_command("backfill_posters_and_captions", "--dry-run", stdout=out) == 0
    assert "2 stored video(s) without a poster or captions" in out.getvalue()
    assert bucket_keys() == [first.storage_path, second.storage_path]

    out = StringIO()
    assert run_command("backfill_posters_and_captions", "--limit", "1", stdout=out,
                       stderr=err) == 0  # fmt: skip
    assert "added to 1 of 1" in out.getvalue() and "1/1" in err.getvalue()  # the progress bar
    first.refresh_from_db()
    assert first.content_data["posterSource"] == "frame"
    assert first.content_data["captionsSource"] == "script"
    out = StringIO()
    assert run_command("backfill_posters_and_captions", stdout=out, stderr=StringIO()) == 0
    assert "added to 1 of 1" in out.getvalue()  # resumed with the one left
    assert sorted(bucket_keys()) == sorted(stored_keys(first) + stored_keys(second))
    out = StringIO()
    assert run_command("backfill_posters_and_captions", stdout=out, stderr=StringIO()) == 0
    assert "added to 0 of 0" in out.getvalue()


def test_a_backfill_whose_captions_upload_fails_leaves_nothing(
    storage_link, s3_server, sample_mp4, bucket_keys
):
    item = legacy_stored_item(s3_server, sample_mp4, "avatar_videos/avatar_old_3.mp4")
    storage_link.refuse(CAPTIONS_PUT)
    err = StringIO()
    assert run_command("backfill_posters_and_captions", stdout=StringIO(), stderr=err) == 1
    assert f"item {item.pk}:" in err.getvalue()
    item.refresh_from_db()
    assert (item.poster_path, item.captions_path) == ("", "")
    assert bucket_keys() == [item.storage_path] and not UploadLedgerEntry.objects.exists()


# --- the captions the players load ----------------------------------------------------------


def test_the_studio_serves_the_captions_from_its_origin(fake_heygen, client):
    item = generate()
    url = f"/topics/{item.topic_id}/videos/{item.pk}/captions.vtt"
    log_in_author(client, ["view_contentitem"])
    answer = client.get(url)
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/vtt")
    assert " ".join(vtt_cue_texts(answer.content.decode())) == SCRIPT
    page = client.get(f"/topics/{item.topic_id}/?play={item.pk}").content.decode()
    assert f'poster="{item.content_data["posterUrl"]}"' in page or 'poster="https://' in page
    assert 'preload="none"' in page
    assert f'<track kind="captions" src="{url}" srclang="en"' in page


def test_captions_of_a_video_without_them_are_not_found(client):
    topic = make_topic()
    item = ContentItem.objects.create(topic=topic, content_type="avatar_video",
                                      content_data={"script": "x", "videoUrl": "https://x"},
                                      status=ContentItem.Status.READY)  # fmt: skip
    log_in_author(client, ["view_contentitem"])
    assert client.get(f"/topics/{topic.pk}/videos/{item.pk}/captions.vtt").status_code == 404


def test_every_lease_of_the_unit_is_renewed_together(fake_heygen):
    """The leases of the poster and captions entries do not run out while a long video is
    copied: they are renewed with the video's."""
    for path in ("avatar_videos/a.mp4", "avatar_videos/a_1.jpg", "avatar_videos/a_2.vtt"):
        ledger.register_pending_upload(path, owner="w", lease_seconds=1)
    assert ledger.renew_upload_leases(
        ["avatar_videos/a.mp4", "avatar_videos/a_1.jpg", "avatar_videos/a_2.vtt"],
        owner="w", lease_seconds=60,
    ) == 3  # fmt: skip
    assert not UploadLedgerEntry.objects.filter(lease_expires_at__lt=leases.db_now()).exists()


def test_confirmation_pages_and_the_admin_list_show_the_poster_not_paths(fake_heygen, client):
    from tests.test_admin import CHANGELIST, act, staff

    item = generate()
    poster_key = item.poster_path
    staff(client, "delete_contentitem", "regenerate_contentitem")
    for url in (f"/topics/{item.topic_id}/videos/{item.pk}/delete/",
                f"/topics/{item.topic_id}/videos/{item.pk}/regenerate/"):  # fmt: skip
        page = client.get(url).content.decode()
        assert '<img class="thumbnail"' in page and poster_key in page
        assert item.storage_path not in page.replace(poster_key, "")  # no path shown
    assert (
        "(3 files)"
        in client.get(f"/topics/{item.topic_id}/videos/{item.pk}/delete/").content.decode()
    )
    changelist = client.get(CHANGELIST).content.decode()
    assert 'class="thumbnail"' in changelist and poster_key in changelist
    confirm = act(client, "delete_with_file", item, confirm=False).content.decode()
    assert 'class="thumbnail"' in confirm and "3 stored files" in confirm
