"""VideoStorage against the real S3 server over HTTP (the Supabase backend) and local files."""

import hashlib
import re
import struct
import time
import tracemalloc
from datetime import UTC, datetime

import pytest
import requests
from django.core.files.base import ContentFile

from avatars.errors import DownloadError
from avatars.providers.offline import render_script_video
from tests.conftest import BUCKET
from tests.servers import TEST_SECRET_KEY, S3Server, supabase_storage_settings
from tests.test_mp4 import html_header_mp4
from videostore.errors import InvalidStoragePath, InvalidVideo, StorageUnavailable
from videostore.storage import StoredObject, VideoStorage, validate_storage_path

MiB = 1024 * 1024
PUBLIC_BASE = f"https://test-project.supabase.co/storage/v1/object/public/{BUCKET}/"
PATH_PATTERN = re.compile(r"^avatar_videos/avatar_[A-Za-z0-9_-]{1,64}_[0-9a-f]{8}\.mp4$")


@pytest.fixture
def video_storage() -> VideoStorage:
    return VideoStorage()


@pytest.fixture
def sample_bytes(sample_mp4) -> bytes:
    return sample_mp4.read_bytes()


def chunked(data: bytes, size: int):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def padded_mp4(sample: bytes, total_size: int, chunk_size: int = MiB):
    """A valid MP4 of `total_size` bytes streamed lazily: the sample, then a `free` box."""
    yield sample
    padding = total_size - len(sample)
    yield struct.pack(">I4s", padding, b"free")
    remaining = padding - 8
    zeros = bytes(chunk_size)
    while remaining:
        size = min(chunk_size, remaining)
        yield zeros if size == chunk_size else zeros[:size]
        remaining -= size


def pending_multipart_uploads(s3_server) -> list:
    return s3_server.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


def test_upload_from_chunks_stores_the_video_with_complete_metadata(
    video_storage, sample_bytes, s3_server, bucket_keys
):
    storage_path = video_storage.new_storage_path("heygen-123")
    stored = video_storage.upload_video(
        chunked(sample_bytes, 7 * 1024),
        "avatar_heygen-123.mp4",
        "video/mp4",
        storage_path=storage_path,
        expected_size=len(sample_bytes),
    )

    assert bucket_keys() == [storage_path]
    head = s3_server.client().head_object(Bucket=BUCKET, Key=storage_path)
    assert head["ContentLength"] == stored.file_size == len(sample_bytes)
    assert head["ContentType"] == "video/mp4"
    body = s3_server.client().get_object(Bucket=BUCKET, Key=storage_path)["Body"].read()
    assert body == sample_bytes
    assert stored.checksum == hashlib.sha256(sample_bytes).hexdigest()
    assert stored.file_url == PUBLIC_BASE + storage_path
    assert (stored.duration_seconds, stored.width, stored.height) == (2.0, 320, 180)
    assert stored.storage_path == storage_path
    assert stored.file_name == "avatar_heygen-123.mp4"
    assert stored.uploaded_at.tzinfo is not None

    metadata = stored.as_metadata()
    assert metadata == {
        "fileUrl": PUBLIC_BASE + storage_path,
        "fileName": "avatar_heygen-123.mp4",
        "fileSize": len(sample_bytes),
        "fileType": "video/mp4",
        "storagePath": storage_path,
        "uploadedAt": metadata["uploadedAt"],
        "storageBucket": BUCKET,
        "checksum": hashlib.sha256(sample_bytes).hexdigest(),
        "duration_seconds": 2.0,
        "width": 320,
        "height": 180,
    }
    assert metadata["uploadedAt"].endswith("Z")
    uploaded_at = datetime.fromisoformat(metadata["uploadedAt"].replace("Z", "+00:00"))
    assert abs((uploaded_at - datetime.now(UTC)).total_seconds()) < 60


def test_upload_from_a_file_object_names_the_object_itself(
    video_storage, sample_mp4, sample_bytes, bucket_keys
):
    with sample_mp4.open("rb") as handle:
        stored = video_storage.upload_video(handle, "lesson.mp4")
    assert PATH_PATTERN.match(stored.storage_path)
    assert bucket_keys() == [stored.storage_path]
    assert stored.file_size == len(sample_bytes)
    assert stored.checksum == hashlib.sha256(sample_bytes).hexdigest()
    assert stored.width == 320


def test_signed_url_downloads_the_same_bytes_and_delete_removes_the_object(
    video_storage, sample_bytes, bucket_keys
):
    stored = video_storage.upload_video([sample_bytes], "a.mp4")
    signed = video_storage.signed_url(stored.storage_path, expires_in=600)
    assert "X-Amz-Signature=" in signed and "X-Amz-Expires=600" in signed
    assert requests.get(signed, timeout=10).content == sample_bytes

    assert video_storage.exists(stored.storage_path)
    assert video_storage.size(stored.storage_path) == len(sample_bytes)
    video_storage.delete_video(stored.storage_path)
    assert bucket_keys() == []
    assert not video_storage.exists(stored.storage_path)
    assert video_storage.size(stored.storage_path) is None
    video_storage.delete_video(stored.storage_path)  # idempotent


def test_private_bucket_gives_a_signed_file_url(settings, s3_server, sample_bytes):
    for key, value in supabase_storage_settings(s3_server, BUCKET, public=False).items():
        setattr(settings, key, value)
    video_storage = VideoStorage()
    stored = video_storage.upload_video([sample_bytes], "a.mp4")
    assert "X-Amz-Signature=" in stored.file_url
    assert "/object/public/" not in stored.file_url
    assert requests.get(stored.file_url, timeout=10).content == sample_bytes
    assert video_storage.public_or_signed_url(stored.storage_path).startswith(s3_server.endpoint)


def test_an_html_page_is_refused_and_nothing_is_stored(video_storage, bucket_keys):
    page = b"<!DOCTYPE html><html><body>Your link has expired</body></html>" * 100
    with pytest.raises(InvalidVideo, match="not an MP4 video: it looks like an HTML"):
        video_storage.upload_video(chunked(page, 1000), "a.mp4")
    assert bucket_keys() == []


def test_an_mp4_header_without_media_is_refused_and_nothing_is_stored(video_storage, bucket_keys):
    data = html_header_mp4()
    with pytest.raises(InvalidVideo, match="no video track"):
        video_storage.upload_video(chunked(data, 100), "a.mp4", expected_size=len(data))
    assert bucket_keys() == []


@pytest.mark.parametrize("movflags", [None, ["-movflags", "0"]], ids=["faststart", "moov-last"])
def test_rendered_videos_pass_the_content_checks_in_either_layout(
    video_storage, bucket_keys, tmp_path, movflags
):
    path = render_script_video("Stored", tmp_path / "v.mp4", width=320, height=180, seconds=2,
                               extra_args=movflags)  # fmt: skip
    with path.open("rb") as stream:
        stored = video_storage.upload_video(stream, "v.mp4")
    assert (stored.duration_seconds, stored.width, stored.height) == (2.0, 320, 180)
    assert bucket_keys() == [stored.storage_path]


def test_a_truncated_download_is_refused_and_nothing_is_stored(
    video_storage, sample_bytes, bucket_keys
):
    with pytest.raises(InvalidVideo, match="truncated"):
        video_storage.upload_video(
            chunked(sample_bytes[:-500], 4096), "a.mp4", expected_size=len(sample_bytes)
        )
    assert bucket_keys() == []


def test_a_download_longer_than_announced_is_refused(video_storage, sample_bytes, bucket_keys):
    with pytest.raises(InvalidVideo, match="length mismatch"):
        video_storage.upload_video([sample_bytes], "a.mp4", expected_size=len(sample_bytes) - 1)
    assert bucket_keys() == []


def test_a_video_over_the_size_cap_is_refused(video_storage, sample_bytes, bucket_keys, settings):
    settings.AVATAR_VIDEO_MAX_BYTES = len(sample_bytes) - 1
    with pytest.raises(InvalidVideo, match="larger than"):
        video_storage.upload_video(chunked(sample_bytes, 1024), "a.mp4")
    with pytest.raises(InvalidVideo, match="limit"):
        video_storage.upload_video([sample_bytes], "a.mp4", expected_size=len(sample_bytes))
    assert bucket_keys() == []


def test_a_multipart_sized_video_over_the_cap_is_refused_and_the_upload_aborted(
    video_storage, sample_bytes, s3_server, bucket_keys
):
    with pytest.raises(InvalidVideo, match="larger than"):
        video_storage.upload_video(padded_mp4(sample_bytes, 40 * MiB), "a.mp4", max_bytes=20 * MiB)
    assert bucket_keys() == []
    assert pending_multipart_uploads(s3_server) == []


def test_a_truncated_multipart_upload_is_aborted(
    video_storage, sample_bytes, s3_server, bucket_keys, settings
):
    settings.SUPABASE_S3_SINGLE_PUT_MAX_BYTES = 8 * MiB  # 18 MiB of known length: in parts
    with pytest.raises(InvalidVideo, match="truncated"):
        video_storage.upload_video(
            padded_mp4(sample_bytes, 18 * MiB), "a.mp4", expected_size=18 * MiB + 1
        )
    assert bucket_keys() == []
    assert pending_multipart_uploads(s3_server) == []


def test_a_large_video_streams_through_in_bounded_memory(
    video_storage, sample_bytes, s3_server, bucket_keys
):
    size = 96 * MiB
    digest = hashlib.sha256()
    for chunk in padded_mp4(sample_bytes, size):
        digest.update(chunk)
    video_storage.upload_video([sample_bytes], "warm-up.mp4")  # load botocore's models first
    tracemalloc.start()
    try:
        stored = video_storage.upload_video(padded_mp4(sample_bytes, size), "big.mp4")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.storage_path in bucket_keys()
    assert stored.file_size == size == video_storage.size(stored.storage_path)
    assert stored.checksum == digest.hexdigest()
    assert stored.duration_seconds == 2.0
    assert peak < 64 * MiB, f"peak {peak / MiB:.0f} MiB"


def test_a_broken_download_passes_its_own_error_through_and_stores_nothing(
    video_storage, sample_bytes, s3_server, bucket_keys
):
    def breaks_off():
        yield from padded_mp4(sample_bytes, 12 * MiB)
        raise DownloadError("The video download broke off.")

    with pytest.raises(DownloadError):
        video_storage.upload_video(breaks_off(), "a.mp4")
    assert bucket_keys() == []
    assert pending_multipart_uploads(s3_server) == []


@pytest.fixture
def stopped_storage(settings):
    """Default storage pointed at an S3 server of its own, which is then stopped."""
    server = S3Server().start()
    try:
        server.create_bucket(BUCKET)
        for key, value in supabase_storage_settings(server, BUCKET).items():
            setattr(settings, key, value)
    finally:
        server.stop()
    return server


def test_storage_down_raises_storage_unavailable_without_secrets(stopped_storage, sample_bytes):
    video_storage = VideoStorage()
    path = video_storage.new_storage_path("down")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="^Storage is unavailable: could not connect"):
        video_storage.upload_video([sample_bytes], "a.mp4", storage_path=path)
    with pytest.raises(StorageUnavailable) as caught:
        video_storage.upload_video(padded_mp4(sample_bytes, 20 * MiB), "a.mp4")
    message = str(caught.value)
    assert TEST_SECRET_KEY not in message and "Signature" not in message
    assert time.monotonic() - started < 60
    for call in (
        lambda: video_storage.delete_video(path),
        lambda: video_storage.exists(path),
        lambda: list(video_storage.iter_objects()),
    ):
        with pytest.raises(StorageUnavailable):
            call()


def test_storage_lost_mid_upload_raises_storage_unavailable_and_stores_nothing(
    storage_link, sample_bytes, bucket_keys
):
    def cut_after_50_mib():
        # Parts are read only as earlier ones finish uploading, so several parts are stored
        # in the multipart upload by the time the link goes down.
        sent = 0
        for chunk in padded_mp4(sample_bytes, 80 * MiB):
            yield chunk
            sent += len(chunk)
            if sent > 50 * MiB:
                storage_link.cut()

    with pytest.raises(StorageUnavailable, match="^Storage is unavailable: "):
        VideoStorage().upload_video(cut_after_50_mib(), "a.mp4")
    storage_link.restore()
    assert bucket_keys() == []  # the unfinished multipart upload is no object


def test_storage_refusing_the_write_raises_storage_unavailable(settings, s3_server, sample_bytes):
    for key, value in supabase_storage_settings(s3_server, "no-such-bucket").items():
        setattr(settings, key, value)
    with pytest.raises(StorageUnavailable, match=r"no such bucket .*\(NoSuchBucket, HTTP 404\)"):
        VideoStorage().upload_video(padded_mp4(sample_bytes, 10 * MiB), "a.mp4")


@pytest.mark.parametrize(
    "video_id, expected_id",
    [
        ("abc123", "abc123"),
        ("../../etc/passwd", "etc_passwd"),
        ("a/b\\c d", "a_b_c_d"),
        ("vidéo-ünïcode-😀", "video-unicode"),
        ("x" * 500, "x" * 64),
        ("", "video"),
        ("///", "video"),
        ("😀", "video"),
    ],
)
def test_new_storage_paths_are_sanitised_and_unique(video_storage, video_id, expected_id):
    first = video_storage.new_storage_path(video_id)
    second = video_storage.new_storage_path(video_id)
    assert PATH_PATTERN.match(first)
    assert first.startswith(f"avatar_videos/avatar_{expected_id}_")
    assert first != second
    assert validate_storage_path(first) == first


@pytest.mark.parametrize(
    "path",
    [
        "avatar_videos/../secrets.txt",
        "avatar_videos/a/../../b.mp4",
        "/avatar_videos/a.mp4",
        "other/a.mp4",
        "avatar_videos\\a.mp4",
        "avatar_videos/a\\..\\b.mp4",
        "avatar_videos/a\x00.mp4",
        "avatar_videos/a\n.mp4",
        "avatar_videos/./a.mp4",
        "avatar_videos//a.mp4",
        "avatar_videos/",
        "avatar_videos/" + "a" * 1100,
    ],
)
def test_paths_outside_the_prefix_or_with_traversal_are_refused(video_storage, path):
    with pytest.raises(InvalidStoragePath):
        validate_storage_path(path)
    with pytest.raises(InvalidStoragePath):
        video_storage.upload_video([b""], "a.mp4", storage_path=path)
    with pytest.raises(InvalidStoragePath):
        video_storage.delete_video(path)


def test_file_names_are_sanitised(video_storage, sample_bytes):
    stored = video_storage.upload_video([sample_bytes], "../../évil name<script>.mp4")
    assert stored.file_name == "evil_name_script_.mp4"
    long_name = video_storage.upload_video([sample_bytes], "n" * 300 + ".mp4").file_name
    assert len(long_name) == 128 and long_name.endswith(".mp4")


def test_an_existing_key_is_never_overwritten(video_storage, sample_bytes, bucket_keys):
    stored = video_storage.upload_video([sample_bytes], "a.mp4")
    with pytest.raises(InvalidStoragePath, match="never reused"):
        video_storage.upload_video([sample_bytes[:100]], "a.mp4", storage_path=stored.storage_path)
    assert video_storage.size(stored.storage_path) == len(sample_bytes)


def test_other_content_types_are_refused(video_storage, sample_bytes, bucket_keys):
    with pytest.raises(InvalidVideo, match="Only MP4"):
        video_storage.upload_video([sample_bytes], "a.html", "text/html")
    assert bucket_keys() == []


def test_listing_is_in_key_order_page_by_page(video_storage, s3_server):
    client = s3_server.client()
    keys = ["avatar_videos/b.mp4", "avatar_videos/a-1.mp4", "avatar_videos/a/x.mp4",
            "avatar_videos/c.mp4", "other/z.mp4"]  # fmt: skip
    for key in keys:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"12345")
    listed = list(video_storage.iter_objects(page_size=2))
    assert [obj.storage_path for obj in listed] == sorted(k for k in keys if k != "other/z.mp4")
    assert all(obj.size == 5 and obj.last_modified.tzinfo for obj in listed)
    assert isinstance(listed[0], StoredObject)


# --- The local backend (the embedded default) ---------------------------------------------


def test_local_upload_writes_the_file_and_serves_it(local_storage, sample_bytes, client):
    video_storage = VideoStorage()
    stored = video_storage.upload_video(chunked(sample_bytes, 7), "a.mp4")
    assert open(local_storage.path(stored.storage_path), "rb").read() == sample_bytes
    assert stored.file_url == f"/media/{stored.storage_path}"
    assert (stored.file_size, stored.width, stored.duration_seconds) == (
        len(sample_bytes), 320, 2.0
    )  # fmt: skip
    signed = video_storage.signed_url(stored.storage_path, expires_in=60)
    response = client.get(signed)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == sample_bytes
    video_storage.delete_video(stored.storage_path)
    video_storage.delete_video(stored.storage_path)
    assert not video_storage.exists(stored.storage_path)


@pytest.mark.parametrize("failure", ["html", "truncated", "too-large"])
def test_local_failed_upload_leaves_no_partial_file(local_storage, sample_bytes, failure):
    video_storage = VideoStorage()
    path = video_storage.new_storage_path("local")
    arguments = {
        "html": ([b"<html>" * 1000], {}),
        "truncated": (chunked(sample_bytes[:-10], 1024), {"expected_size": len(sample_bytes)}),
        "too-large": (chunked(sample_bytes, 1024), {"max_bytes": len(sample_bytes) // 2}),
    }[failure]
    with pytest.raises(InvalidVideo):
        video_storage.upload_video(arguments[0], "a.mp4", storage_path=path, **arguments[1])
    assert not video_storage.exists(path)
    assert list(video_storage.iter_objects()) == []


def test_local_listing_matches_s3_key_order(local_storage, sample_bytes):
    names = ["avatar_videos/b.mp4", "avatar_videos/a-1.mp4", "avatar_videos/a/x.mp4",
             "avatar_videos/c.mp4", "other/z.mp4"]  # fmt: skip
    for name in names:
        local_storage.save(name, ContentFile(b"12345"))
    listed = list(VideoStorage().iter_objects())
    assert [obj.storage_path for obj in listed] == sorted(n for n in names if n != "other/z.mp4")
    assert all(obj.size == 5 and obj.last_modified.tzinfo for obj in listed)
