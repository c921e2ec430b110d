"""Moving a video library between storages (`migrate_storage`): local files to a bucket, a
bucket to another, public to private; a row changed mid-move, --delete-source, --dry-run,
and a kill -9 in the middle with a rerun, against the real S3 server."""

import json
import os
import signal
import subprocess
import sys
import time
from io import StringIO

import pytest
import requests

from tests.builders import make_stored_item, make_topic, run_command, stored_video_data
from tests.conftest import BUCKET
from tests.test_multipart import abort_all
from tests.workers import ROOT, wait_until, worker_env
from topics import migration, services
from topics.models import ContentItem
from topics.objects import stored_objects
from topics.selectors import video_view
from videostore import ledger
from videostore.clock import DbNow
from videostore.copies import copy_object
from videostore.locations import LOCAL
from videostore.models import UploadLedgerEntry
from videostore.storage import STORAGE_METADATA_FIELDS, VideoStorage

pytestmark = pytest.mark.django_db(transaction=True)

OTHER = "media-next"
PRIVATE = "media-private"


@pytest.fixture
def other_bucket(s3_server):
    s3_server.create_bucket(OTHER, public=True)
    abort_all(s3_server)
    yield OTHER
    s3_server.empty_bucket(OTHER)


@pytest.fixture
def private_bucket(settings, s3_server):
    s3_server.create_bucket(PRIVATE, public=False)
    settings.SUPABASE_PRIVATE_BUCKETS = [PRIVATE]
    yield PRIVATE
    s3_server.empty_bucket(PRIVATE)


@pytest.fixture
def media_root(settings, tmp_path):
    """Local files (MEDIA_ROOT) beside the configured bucket."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def store_video(topic, sample_mp4, location: str = "") -> ContentItem:
    """What a generation does, in `location` (default: the configured bucket)."""
    storage = VideoStorage().in_bucket(location)
    path = storage.new_storage_path("lesson")
    ledger.register_pending_upload(path, reason="test upload", bucket=storage.bucket)
    with open(sample_mp4, "rb") as stream:
        stored = storage.upload_video(stream, "lesson.mp4", storage_path=path)
    data = {"script": "Hello", "videoUrl": stored.file_url, **stored.as_metadata()}
    _, (item,) = services.topic_save_generated(
        topic=topic,
        items=[services.GeneratedContent(content_type="avatar_video", content_data=data)],
    )
    return item


def migrate(*args: str) -> tuple[int, dict]:
    out = StringIO()
    code = run_command("migrate_storage", "--json", "--no-progress", *args, stdout=out)
    return code, json.loads(out.getvalue() or "{}")


def reconcile(location: str, *args: str) -> tuple[int, dict]:
    out = StringIO()
    code = run_command("reconcile_storage", "--json", "--fix", "--grace-seconds", "0",
                       "--location", location, *args, stdout=out)  # fmt: skip
    return code, json.loads(out.getvalue())


def served(item_id: int, video_storage: VideoStorage | None = None) -> bool:
    """The row points at a complete object where it says it is (read, check, read again: a
    switch between the reads is looked at once more)."""
    row = ContentItem.objects.values_list(
        "storage_path", "storage_bucket", "content_data__fileSize"
    )
    for _attempt in range(5):
        before = row.get(pk=item_id)
        path, location, size = before
        found = (video_storage or VideoStorage()).in_bucket(location).size(path)
        if row.get(pk=item_id) == before:
            return found == size
    return False


def keys(s3_server, bucket: str) -> set[str]:
    return set(s3_server.keys(bucket, "avatar_videos/"))


def local_keys(media_root) -> set[str]:
    return {str(path.relative_to(media_root)) for path in media_root.rglob("*") if path.is_file()}


def test_local_files_move_to_a_bucket_and_play_from_it(client, s3_server, media_root, sample_mp4):
    topic = make_topic()
    items = [store_video(topic, sample_mp4, LOCAL) for _ in range(2)]
    assert {item.storage_bucket for item in items} == {LOCAL}
    assert all(video_view(item).play_url.startswith("/signed-media/") for item in items)
    assert client.get(video_view(items[0]).play_url).status_code == 200

    code, report = migrate("--to", BUCKET)

    assert code == 0 and report["moved"] == 2 and report["failures"] == []
    assert report["bytes_copied"] == sum(item.content_data["fileSize"] for item in items)
    assert keys(s3_server, BUCKET) == {item.storage_path for item in items}
    for item in items:
        before = item.content_data
        item.refresh_from_db()
        assert item.storage_bucket == BUCKET and item.content_data["storageBucket"] == BUCKET
        assert item.content_data["fileUrl"] == (
            f"https://test-project.supabase.co/storage/v1/object/public/{BUCKET}/"
            f"{item.storage_path}"
        )
        assert item.content_data["checksum"] == before["checksum"]
        assert video_view(item).play_url == item.content_data["fileUrl"] and served(item.pk)
    assert not UploadLedgerEntry.objects.exists()
    # Without --delete-source the local files stay: copies a move kept, not orphans.
    assert local_keys(media_root) == {item.storage_path for item in items}
    code, check = reconcile(LOCAL)
    assert code == 0 and check["kept_copies"] == 2 and check["orphans"] == 0
    assert local_keys(media_root) == {item.storage_path for item in items}
    code, check = reconcile(BUCKET)
    assert code == 0 and check["rows_checked"] == 2 and check["orphans"] == 0
    # Once satisfied, the operator lets them go.
    code, check = reconcile(LOCAL, "--delete-kept-copies")
    assert code == 0 and check["deleted_kept_copies"] == 2 and local_keys(media_root) == set()
    assert keys(s3_server, BUCKET) == {item.storage_path for item in items}


def test_from_moves_only_the_items_of_one_location(s3_server, other_bucket, media_root, sample_mp4):
    topic = make_topic()
    in_bucket, on_disk = store_video(topic, sample_mp4), store_video(topic, sample_mp4, LOCAL)

    code, report = migrate("--from", LOCAL, "--to", other_bucket)

    assert code == 0 and report["moved"] == 1 and report["already_there"] == 0
    in_bucket.refresh_from_db()
    on_disk.refresh_from_db()
    assert (in_bucket.storage_bucket, on_disk.storage_bucket) == (BUCKET, other_bucket)


def test_a_bucket_moves_to_another_and_delete_source_empties_it(
    s3_server, other_bucket, sample_mp4
):
    topic = make_topic()
    items = [store_video(topic, sample_mp4) for _ in range(3)]
    paths = {item.storage_path for item in items}

    code, report = migrate("--to", other_bucket, "--delete-source")

    assert code == 0 and report["moved"] == 3 and report["sources_deleted"] == 3
    assert keys(s3_server, other_bucket) == paths and keys(s3_server, BUCKET) == set()
    assert all(served(item.pk) for item in items)
    assert set(ContentItem.objects.values_list("storage_bucket", flat=True)) == {other_bucket}
    assert not UploadLedgerEntry.objects.exists()
    # A rerun finds everything in place.
    code, report = migrate("--to", other_bucket, "--delete-source")
    assert code == 0 and report["moved"] == 0 and report["already_there"] == 3


def test_a_move_to_a_private_bucket_serves_signed_urls(s3_server, private_bucket, sample_mp4):
    item = store_video(make_topic(), sample_mp4)
    assert "/object/public/" in item.content_data["fileUrl"]

    code, report = migrate("--to", private_bucket, "--delete-source")

    assert code == 0 and report["moved"] == 1 and report["target_public"] is False
    item.refresh_from_db()
    for url in (item.content_data["fileUrl"], video_view(item).play_url):
        assert url.startswith(f"{s3_server.endpoint}/{private_bucket}/{item.storage_path}?")
        assert "X-Amz-Signature=" in url
        assert requests.get(url, timeout=10).content == open(sample_mp4, "rb").read()
    unsigned = f"{s3_server.endpoint}/{private_bucket}/{item.storage_path}"
    assert requests.get(unsigned, timeout=10).status_code == 403


def test_a_row_deleted_mid_move_is_skipped_and_its_copy_discarded(
    monkeypatch, s3_server, other_bucket, sample_mp4
):
    topic = make_topic()
    doomed, kept = store_video(topic, sample_mp4), store_video(topic, sample_mp4)
    real_copy = migration.copy_object

    def copy_then_delete(source, target, storage_path, **kwargs):
        sha256 = real_copy(source, target, storage_path, **kwargs)
        if storage_path == doomed.storage_path:  # the author deletes it during its copy
            services.content_item_delete(content_item=doomed)
        return sha256

    monkeypatch.setattr(migration, "copy_object", copy_then_delete)
    code, report = migrate("--to", other_bucket)

    assert code == 0 and report["changed"] == 1 and report["moved"] == 1
    assert keys(s3_server, other_bucket) == {kept.storage_path}
    assert keys(s3_server, BUCKET) == {kept.storage_path}  # kept: no --delete-source
    assert not UploadLedgerEntry.objects.exists()


def test_a_row_regenerated_mid_move_keeps_its_new_video(
    monkeypatch, s3_server, other_bucket, sample_mp4
):
    """The row points at another object when the copy ends: the copy goes, the new video
    stays where the regeneration stored it."""
    topic = make_topic()
    item = store_video(topic, sample_mp4)
    old_path = item.storage_path
    real_copy = migration.copy_object

    def copy_then_regenerate(source, target, storage_path, **kwargs):
        sha256 = real_copy(source, target, storage_path, **kwargs)
        replacement = store_video(make_topic("Other"), sample_mp4)  # a new video's upload
        data = {**replacement.content_data}
        services.content_item_delete(content_item=replacement)
        storage = VideoStorage()
        path = storage.new_storage_path("regenerated")
        ledger.register_pending_upload(path, reason="regenerate")
        with open(sample_mp4, "rb") as stream:
            stored = storage.upload_video(stream, "lesson.mp4", storage_path=path)
        data.update(stored.as_metadata(), videoUrl=stored.file_url)
        services.content_item_mark_stored(content_item=item, content_data=data)
        return sha256

    monkeypatch.setattr(migration, "copy_object", copy_then_regenerate)
    code, report = migrate("--to", other_bucket)

    assert code == 0 and report["changed"] == 1 and report["moved"] == 0
    item.refresh_from_db()
    assert item.storage_bucket == BUCKET and item.storage_path != old_path and served(item.pk)
    assert keys(s3_server, other_bucket) == set()
    assert keys(s3_server, BUCKET) == {item.storage_path}  # the old video went with the save
    assert not UploadLedgerEntry.objects.exists()


def test_a_rename_mid_move_does_not_stop_it(monkeypatch, s3_server, other_bucket, sample_mp4):
    item = store_video(make_topic(), sample_mp4)
    real_copy = migration.copy_object

    def copy_then_rename(*args, **kwargs):
        sha256 = real_copy(*args, **kwargs)
        services.content_item_rename(content_item=item, title="Renamed meanwhile")
        return sha256

    monkeypatch.setattr(migration, "copy_object", copy_then_rename)
    code, report = migrate("--to", other_bucket)
    assert code == 0 and report["moved"] == 1
    item.refresh_from_db()
    assert item.title == "Renamed meanwhile" and item.storage_bucket == other_bucket


def test_a_copy_that_differs_from_its_row_fails_and_leaves_the_row(
    s3_server, other_bucket, sample_mp4
):
    item = store_video(make_topic(), sample_mp4)
    data = {**item.content_data, "checksum": "0" * 64}
    ContentItem.objects.filter(pk=item.pk).update(content_data=data)

    code, report = migrate("--to", other_bucket, "--delete-source")

    assert code == 1 and report["moved"] == 0
    [(item_id, reason)] = report["failures"]
    assert item_id == item.pk and "sha256" in reason
    item.refresh_from_db()
    assert item.storage_bucket == BUCKET and served(item.pk)
    assert keys(s3_server, other_bucket) == set() and not UploadLedgerEntry.objects.exists()


def test_a_row_without_a_checksum_gets_the_one_computed_on_the_way(
    s3_server, other_bucket, sample_mp4
):
    item = store_video(make_topic(), sample_mp4)
    checksum = item.content_data["checksum"]
    data = {k: v for k, v in item.content_data.items() if k != "checksum"}
    ContentItem.objects.filter(pk=item.pk).update(content_data=data)
    assert stored_objects(ContentItem.objects.get(pk=item.pk))[0].sha256 is None

    code, _ = migrate("--to", other_bucket)

    item.refresh_from_db()
    assert code == 0 and item.content_data["checksum"] == checksum


def test_a_dry_run_writes_nothing(s3_server, other_bucket, media_root, sample_mp4):
    topic = make_topic()
    items = [store_video(topic, sample_mp4), store_video(topic, sample_mp4, LOCAL)]
    rows = list(ContentItem.objects.order_by("pk").values())

    code, report = migrate("--to", other_bucket, "--dry-run", "--delete-source")

    assert code == 0 and report["would_move"] == 2 and report["moved"] == 0
    assert report["bytes_copied"] == sum(item.content_data["fileSize"] for item in items)
    assert list(ContentItem.objects.order_by("pk").values()) == rows
    assert keys(s3_server, other_bucket) == set()
    assert keys(s3_server, BUCKET) == {items[0].storage_path}
    assert local_keys(media_root) == {items[1].storage_path}
    assert not UploadLedgerEntry.objects.exists()


def test_a_legacy_row_without_a_location_moves_from_the_configured_bucket(
    s3_server, other_bucket, sample_mp4
):
    item = store_video(make_topic(), sample_mp4)
    data = {k: v for k, v in item.content_data.items() if k != "storageBucket"}
    ContentItem.objects.filter(pk=item.pk).update(content_data=data, storage_bucket="")

    code, report = migrate("--to", other_bucket, "--delete-source")

    item.refresh_from_db()
    assert code == 0 and report["moved"] == 1 and item.storage_bucket == other_bucket
    assert keys(s3_server, BUCKET) == set() and keys(s3_server, other_bucket) == {item.storage_path}


def test_a_bucket_moves_back_to_local_files(client, s3_server, media_root, sample_mp4):
    item = store_video(make_topic(), sample_mp4)

    code, report = migrate("--to", LOCAL, "--delete-source")

    item.refresh_from_db()
    assert code == 0 and report["moved"] == 1 and item.storage_bucket == LOCAL
    assert local_keys(media_root) == {item.storage_path} and keys(s3_server, BUCKET) == set()
    response = client.get(video_view(item).play_url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == open(sample_mp4, "rb").read()


def test_an_unknown_target_bucket_is_refused(s3_server, sample_mp4):
    store_video(make_topic(), sample_mp4)
    code, _ = migrate("--to", "no-such-bucket")
    assert code == 2
    assert ContentItem.objects.get().storage_bucket == BUCKET


#: `migrate_storage` with a pause between each verified copy and its switch, so the kill can
#: land in the window where a copy is written but no row points at it yet.
_SLOW_SWITCH = """
import sys, time
import django
django.setup()
from django.core.management import call_command
from topics import migration
switch = migration._Mover._switch
def slow_switch(self, *args, **kwargs):
    time.sleep(0.6)
    return switch(self, *args, **kwargs)
migration._Mover._switch = slow_switch
call_command("migrate_storage", *sys.argv[1:])
"""


def _pending_copy_written(target: str, video_storage: VideoStorage) -> bool:
    pending = UploadLedgerEntry.objects.filter(bucket=target, intent="upload")
    return any(video_storage.in_bucket(target).exists(path)
               for path in pending.values_list("storage_path", flat=True))  # fmt: skip


def _kill_in_the_middle(target: str, items: list[ContentItem], **env: str) -> int:
    """Run `migrate_storage --to target --delete-source` in its own process and SIGKILL it
    once two items moved and a third one's copy is written but not switched; every row is
    checked to be served all along. Returns how many items it moved."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_SWITCH, "--to", target, "--delete-source",
         "--pause-seconds", "0.2", "--no-progress"],
        cwd=ROOT, env=worker_env(VIDEO_JOB_LEASE_SECONDS="2", **env),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    pks = [item.pk for item in items]
    deadline = time.monotonic() + 90
    video_storage = VideoStorage()  # one client per location, as a page of cards has
    killed = False
    try:
        while time.monotonic() < deadline and process.poll() is None:
            assert all(served(pk, video_storage) for pk in pks), "a row's object was missing"
            moved = ContentItem.objects.filter(pk__in=pks, storage_bucket=target).count()
            if moved >= 2 and _pending_copy_written(target, video_storage):
                os.killpg(process.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.01)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert killed, process.stderr.read().decode()[-2000:]
    return ContentItem.objects.filter(pk__in=pks, storage_bucket=target).count()


def _rerun_and_check(target: str, items: list[ContentItem], *, sweep_first: bool) -> None:
    """After the kill: every row still served; once the dead run's leases end, the sweep
    (or the rerun itself) removes its unswitched copy, and the rerun moves the rest."""
    pks = [item.pk for item in items]
    assert all(served(pk) for pk in pks)
    # The killed run's leases end (2 s at most, on the database's clock).
    live = UploadLedgerEntry.objects.filter(intent="upload", lease_expires_at__gte=DbNow())
    wait_until(lambda: not live.exists(), timeout=10, interval=0.05)
    if sweep_first:
        unswitched = set(UploadLedgerEntry.objects.filter(intent="upload").values_list(
            "storage_path", flat=True))  # fmt: skip
        assert unswitched
        _, check = reconcile(target)
        assert check["pending_uploads"] == 0
        listed = {obj.storage_path for obj in VideoStorage().in_bucket(target).iter_objects()}
        assert not unswitched & listed
    code, report = migrate("--to", target, "--delete-source")
    assert code == 0 and report["failures"] == [], report
    assert report["moved"] + report["already_there"] == len(items)
    assert set(ContentItem.objects.values_list("storage_bucket", flat=True)) == {target}
    assert all(served(pk) for pk in pks)


@pytest.mark.slow
def test_a_bucket_move_killed_midway_resumes_and_leaves_no_orphan(
    s3_server, other_bucket, sample_mp4
):
    topic = make_topic()
    items = [store_video(topic, sample_mp4) for _ in range(6)]

    moved = _kill_in_the_middle(other_bucket, items)

    assert 2 <= moved < len(items)
    _rerun_and_check(other_bucket, items, sweep_first=False)
    for location in (BUCKET, other_bucket):
        code, check = reconcile(location)
        assert code == 0 and check["orphans"] == 0 and check["kept_copies"] == 0, check
    paths = {item.storage_path for item in items}
    assert keys(s3_server, other_bucket) == paths and keys(s3_server, BUCKET) == set()
    assert not UploadLedgerEntry.objects.exists()


@pytest.mark.slow
def test_a_local_to_bucket_move_killed_midway_resumes_and_leaves_no_orphan(
    s3_server, media_root, sample_mp4
):
    topic = make_topic()
    items = [store_video(topic, sample_mp4, LOCAL) for _ in range(6)]

    moved = _kill_in_the_middle(BUCKET, items, MEDIA_ROOT=str(media_root))

    assert 2 <= moved < len(items)
    _rerun_and_check(BUCKET, items, sweep_first=True)
    for location in (LOCAL, BUCKET):
        code, check = reconcile(location)
        assert code == 0 and check["orphans"] == 0 and check["kept_copies"] == 0, check
    assert keys(s3_server, BUCKET) == {item.storage_path for item in items}
    assert local_keys(media_root) == set()
    assert not UploadLedgerEntry.objects.exists()


def test_the_report_and_the_progress_bar_read_well(s3_server, other_bucket, sample_mp4):
    topic = make_topic()
    items = [store_video(topic, sample_mp4) for _ in range(2)]
    out, err = StringIO(), StringIO()

    code = run_command("migrate_storage", "--to", other_bucket, stdout=out, stderr=err)

    size = sum(item.content_data["fileSize"] for item in items)
    assert code == 0
    assert f"moved to {other_bucket} (public URLs): 2 item(s), {size / 1024:.1f} KiB" in (
        out.getvalue()
    )
    assert "source objects kept: 2" in out.getvalue() and "failed: 0" in out.getvalue()
    assert "2/2" in err.getvalue()


def test_a_large_object_moves_in_parts(settings, s3_server, other_bucket):
    """Above SUPABASE_S3_SINGLE_PUT_MAX_BYTES the copy goes up in parts, as new videos do."""
    settings.SUPABASE_S3_SINGLE_PUT_MAX_BYTES = 12 * 1024 * 1024
    body = os.urandom(13 * 1024 * 1024)
    path = "avatar_videos/avatar_large_0001.mp4"
    s3_server.client().put_object(Bucket=BUCKET, Key=path, Body=body)
    item = make_stored_item(make_topic(), path, len(body))
    data = stored_video_data(path, len(body), content=body)
    ContentItem.objects.filter(pk=item.pk).update(content_data=data)

    code, report = migrate("--to", other_bucket, "--delete-source")

    assert code == 0 and report["moved"] == 1 and report["bytes_copied"] == len(body)
    copied = s3_server.client().get_object(Bucket=other_bucket, Key=path)
    assert copied["ETag"].strip('"').endswith("-2")  # two parts
    assert copied["Body"].read() == body and keys(s3_server, BUCKET) == set()


def test_a_seed_row_with_nested_storage_metadata_gets_its_new_url(
    s3_server, other_bucket, sample_mp4
):
    item = store_video(make_topic(), sample_mp4)
    nested = {key: item.content_data[key] for key in STORAGE_METADATA_FIELDS}
    seed = {"script": "Hello", "videoUrl": "https://files2.heygen.ai/old.mp4",
            "checksum": item.content_data["checksum"],
            "metadata": {"storage_metadata": nested}}  # fmt: skip
    ContentItem.objects.filter(pk=item.pk).update(content_data=seed, storage_bucket="")

    code, report = migrate("--to", other_bucket)

    item.refresh_from_db()
    assert code == 0 and report["moved"] == 1
    assert item.content_data["fileUrl"].endswith(f"/public/{other_bucket}/{item.storage_path}")
    assert item.content_data["storageBucket"] == other_bucket
    assert item.content_data["videoUrl"] == "https://files2.heygen.ai/old.mp4"


@pytest.mark.parametrize("failure", ["lost lease", "missing source"])
def test_a_copy_that_stops_midway_leaves_nothing_and_says_why(
    s3_server, other_bucket, sample_mp4, failure
):
    item = store_video(make_topic(), sample_mp4)
    source, target = VideoStorage(), VideoStorage().in_bucket(other_bucket)
    size = item.content_data["fileSize"]

    def lose_the_lease(_bytes: int) -> None:
        raise ledger.UploadLost("given up")

    if failure == "lost lease":
        with pytest.raises(ledger.UploadLost):
            copy_object(source, target, item.storage_path, size=size,
                        content_type="video/mp4", on_bytes=lose_the_lease)  # fmt: skip
    else:
        s3_server.client().delete_object(Bucket=BUCKET, Key=item.storage_path)
        with pytest.raises(FileNotFoundError):
            copy_object(source, target, item.storage_path, size=size, content_type="video/mp4")
    assert keys(s3_server, other_bucket) == set()


def test_a_video_moves_with_its_poster_and_captions_as_one_unit(
    s3_server, private_bucket, bucket_keys
):
    """A generated lesson (the engine, offline provider): its video, poster and captions move
    together to a private bucket; every link the row keeps is signed and opens there."""
    from avatars.inline import run_job_inline
    from avatars.services import avatar_video_request

    job = avatar_video_request(topic=make_topic(), script="Leaves make sugar from light.",
                               enqueue_submit=False)  # fmt: skip
    assert run_job_inline(job.pk, poll_interval=0.01).state == "stored"
    item = ContentItem.objects.get(pk=job.content_item_id)
    unit = {stored.storage_path for stored in stored_objects(item)}
    assert {stored.kind for stored in stored_objects(item)} == {"video", "poster", "captions"}
    assert set(bucket_keys()) == unit

    code, report = migrate("--to", private_bucket, "--delete-source")

    assert code == 0 and report["moved"] == 1, report
    assert keys(s3_server, private_bucket) == unit and keys(s3_server, BUCKET) == set()
    item.refresh_from_db()
    assert item.storage_bucket == private_bucket
    for key in ("fileUrl", "posterUrl", "captionsUrl"):
        url = item.content_data[key]
        assert url.startswith(f"{s3_server.endpoint}/{private_bucket}/"), (key, url)
        assert requests.get(url, timeout=10).status_code == 200
    for location in (BUCKET, private_bucket):
        code, report = reconcile(location)
        assert code == 0 and report["orphans"] == 0, report
        assert report["dangling_missing"] == 0 and report["dangling_size"] == 0, report
