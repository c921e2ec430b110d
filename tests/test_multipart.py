"""Unfinished multipart uploads against the real S3 server: listed, reported, aborted."""

import json
import struct
from datetime import timedelta
from io import StringIO

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from tests.builders import run_command
from tests.conftest import BUCKET
from tests.servers import supabase_storage_settings
from videostore.errors import StorageUnavailable
from videostore.ledger import register_pending_upload
from videostore.multipart import (
    MultipartUpload,
    abort_multipart_upload,
    list_multipart_uploads,
    upload_state,
)
from videostore.storage import VideoStorage

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


def abort_all(s3_server) -> None:
    client = s3_server.client()
    for upload in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
        client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])


@pytest.fixture(autouse=True)
def _no_multipart_uploads(s3_server):
    """The shared bucket is emptied of objects between tests, not of unfinished uploads."""
    abort_all(s3_server)
    yield
    abort_all(s3_server)


def start_unfinished_upload(s3_server, key: str, parts: int = 2) -> str:
    """A real multipart upload of `parts` 5 MiB parts, never completed."""
    client = s3_server.client()
    upload_id = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    for number in range(1, parts + 1):
        client.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(5 * MiB)
        )
    return upload_id


def reconcile(*args: str) -> tuple[int, dict]:
    out = StringIO()
    code = run_command("reconcile_storage", "--json", *args, stdout=out)
    return code, json.loads(out.getvalue())


def test_unfinished_uploads_under_the_prefix_are_listed_relative_to_the_location(s3_server):
    upload_id = start_unfinished_upload(s3_server, "avatar_videos/avatar_half.mp4")
    start_unfinished_upload(s3_server, "other_prefix/not_ours.mp4", parts=1)

    uploads = list_multipart_uploads()
    assert [(u.storage_path, u.upload_id) for u in uploads] == [
        ("avatar_videos/avatar_half.mp4", upload_id)
    ]
    assert uploads[0].initiated is not None and uploads[0].initiated.tzinfo is not None

    settings = supabase_storage_settings(s3_server, BUCKET)
    settings["STORAGES"]["default"]["OPTIONS"]["location"] = "tenant"
    start_unfinished_upload(s3_server, "tenant/avatar_videos/avatar_located.mp4", parts=1)
    with override_settings(**settings):
        located = list_multipart_uploads()
        assert [u.storage_path for u in located] == ["avatar_videos/avatar_located.mp4"]
        assert abort_multipart_upload(located[0]) is True
        assert abort_multipart_upload(located[0]) is False  # already gone
        assert list_multipart_uploads() == []


def test_local_file_storage_has_no_multipart_uploads(local_storage):
    assert list_multipart_uploads() == []


def test_reconcile_reports_a_stale_multipart_upload_then_fix_aborts_it(s3_server):
    start_unfinished_upload(s3_server, "avatar_videos/avatar_half.mp4")

    code, report = reconcile("--grace-seconds", "0")
    assert code == 1
    assert report["stale_multipart_uploads"] == 1 and report["problems"] == 1
    assert report["samples"]["stale_multipart"][0]["storage_path"] == (
        "avatar_videos/avatar_half.mp4"
    )
    assert len(list_multipart_uploads()) == 1  # reported, not touched

    code, report = reconcile("--fix", "--grace-seconds", "0")
    assert code == 0 and report["aborted_multipart_uploads"] == 1
    assert list_multipart_uploads() == []
    assert s3_server.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_only_uploads_started_before_the_grace_period_and_without_a_live_lease_are_stale():
    # moto answers every upload with the same Initiated time (2010-11-10), so the grace
    # period is checked here on the rule itself.
    now = timezone.now()
    cutoff = now - timedelta(hours=1)
    register_pending_upload("avatar_videos/avatar_leased.mp4", owner="w", lease_seconds=600)

    def state(path: str, initiated) -> str:
        return upload_state(MultipartUpload(path, "id", initiated), cutoff=cutoff)

    assert state("avatar_videos/avatar_new.mp4", now) == "young"
    assert state("avatar_videos/avatar_old.mp4", now - timedelta(hours=2)) == "stale"
    assert state("avatar_videos/avatar_unknown.mp4", None) == "stale"
    assert state("avatar_videos/avatar_leased.mp4", now - timedelta(days=2)) == "in_flight"


def test_a_multipart_upload_whose_owner_holds_a_live_lease_is_kept(s3_server):
    storage_path = "avatar_videos/avatar_leased.mp4"
    register_pending_upload(storage_path, owner="worker-1", lease_seconds=600)
    start_unfinished_upload(s3_server, storage_path)

    code, report = reconcile("--fix", "--grace-seconds", "0")
    assert code == 0
    assert report["multipart_uploads_in_flight"] == 1
    assert report["stale_multipart_uploads"] == report["aborted_multipart_uploads"] == 0
    assert [u.storage_path for u in list_multipart_uploads()] == [storage_path]


def test_a_multipart_upload_whose_lease_expired_is_aborted(s3_server):
    storage_path = "avatar_videos/avatar_dead_worker.mp4"
    register_pending_upload(storage_path, owner="worker-1", lease_seconds=0.001)
    start_unfinished_upload(s3_server, storage_path)

    code, report = reconcile("--fix", "--grace-seconds", "0")
    assert code == 0 and report["aborted_multipart_uploads"] == 1
    assert list_multipart_uploads() == []


def mp4_stream(sample: bytes, total_size: int, *, on_sent=None):
    """A valid MP4 of `total_size` bytes (the sample, then a `free` box), 1 MiB at a time;
    `on_sent(bytes_sent)` runs after each chunk."""
    yield sample
    yield struct.pack(">I4s", total_size - len(sample), b"free")
    sent = len(sample) + 8
    while sent < total_size:
        chunk = bytes(min(MiB, total_size - sent))
        yield chunk
        sent += len(chunk)
        if on_sent is not None:
            on_sent(sent)


def test_a_link_cut_mid_upload_leaves_a_multipart_upload_that_reconcile_aborts(
    storage_link, sample_mp4, bucket_keys, s3_server
):
    import time

    def cut_after_the_first_part(sent: int) -> None:
        if sent < 12 * MiB or storage_link_is_cut:
            return
        # Cut once the server holds a part of the multipart upload: then the create call's
        # answer has reached the client (parts go up only after it). On a loaded machine the
        # create call may still be in flight when 12 MiB have been read, and a cut while
        # its answer is on the way is another fault (an answer without an UploadId).
        client = s3_server.client()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            uploads = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
            if any(
                client.list_parts(
                    Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]
                ).get("Parts")
                for upload in uploads
            ):
                break
            time.sleep(0.05)
        storage_link.cut()
        storage_link_is_cut.append(True)

    storage_link_is_cut: list[bool] = []

    stream = mp4_stream(sample_mp4.read_bytes(), 20 * MiB, on_sent=cut_after_the_first_part)
    with pytest.raises(StorageUnavailable):
        VideoStorage().upload_video(stream, "cut.mp4")
    storage_link.restore()

    left = list_multipart_uploads()
    assert len(left) == 1 and left[0].storage_path.startswith("avatar_videos/avatar_cut_")
    assert bucket_keys() == []  # invisible to an object listing

    code, report = reconcile("--fix", "--grace-seconds", "0")
    assert code == 0 and report["aborted_multipart_uploads"] == 1
    assert list_multipart_uploads() == []
