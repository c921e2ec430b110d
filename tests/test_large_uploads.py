"""Videos of known length against the real S3 server: one streamed PUT up to the threshold,
parts sized by the length above it; checked, complete, and nothing left half-uploaded."""

import hashlib
import io
import tracemalloc

import pytest
from django.core.files.storage import default_storage

from contentstudio.stream_upload import (
    MAX_PART_BYTES,
    S3_MAX_PARTS,
    S3_MIN_PART_BYTES,
    completion_read_timeout,
    part_size_for,
    parts_in_flight,
    put_stream,
)
from tests.conftest import BUCKET
from tests.test_video_storage import padded_mp4, pending_multipart_uploads
from videostore.errors import InvalidVideo
from videostore.storage import VideoStorage

MiB = 1024 * 1024
GiB = 1024 * MiB
THRESHOLD = 12 * MiB


@pytest.fixture
def sample_bytes(sample_mp4) -> bytes:
    return sample_mp4.read_bytes()


@pytest.fixture
def small_threshold(settings):
    settings.SUPABASE_S3_SINGLE_PUT_MAX_BYTES = THRESHOLD
    return THRESHOLD


def stored_etag(s3_server, storage_path: str) -> str:
    """S3 names a multipart object's ETag `<md5 of the parts' md5s>-<parts>`."""
    return s3_server.client().head_object(Bucket=BUCKET, Key=storage_path)["ETag"].strip('"')


@pytest.mark.parametrize(
    ("size", "parts"), [(THRESHOLD, None), (THRESHOLD + 1, 2)], ids=["at-threshold", "above"]
)
def test_a_video_at_or_below_the_threshold_is_one_put_and_above_it_multipart(
    small_threshold, sample_bytes, s3_server, bucket_keys, size, parts
):
    digest = hashlib.sha256()
    for chunk in padded_mp4(sample_bytes, size):
        digest.update(chunk)

    stored = VideoStorage().upload_video(
        padded_mp4(sample_bytes, size), "edge.mp4", expected_size=size
    )

    assert bucket_keys() == [stored.storage_path]
    assert stored.file_size == size == VideoStorage().size(stored.storage_path)
    assert stored.checksum == digest.hexdigest()
    assert stored.duration_seconds == 2.0
    body = s3_server.client().get_object(Bucket=BUCKET, Key=stored.storage_path)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == stored.checksum
    etag = stored_etag(s3_server, stored.storage_path)
    assert etag.endswith(f"-{parts}") if parts else "-" not in etag
    assert pending_multipart_uploads(s3_server) == []


@pytest.mark.parametrize("size", [THRESHOLD - MiB, THRESHOLD + MiB], ids=["put", "multipart"])
def test_the_checks_run_on_the_streamed_bytes_and_a_failure_leaves_nothing(
    small_threshold, sample_bytes, s3_server, bucket_keys, size
):
    announced_longer = padded_mp4(sample_bytes, size)
    with pytest.raises(InvalidVideo, match="truncated"):
        VideoStorage().upload_video(announced_longer, "short.mp4", expected_size=size + 1)
    not_an_mp4 = [b"\0" * MiB for _ in range(size // MiB)]
    with pytest.raises(InvalidVideo, match="not an MP4"):
        VideoStorage().upload_video(not_an_mp4, "zeros.mp4", expected_size=size)
    assert bucket_keys() == []
    assert pending_multipart_uploads(s3_server) == []


def test_a_single_put_streams_the_body_in_bounded_memory(settings, sample_bytes, bucket_keys):
    size = 48 * MiB
    settings.SUPABASE_S3_SINGLE_PUT_MAX_BYTES = size
    VideoStorage().upload_video([sample_bytes], "warm-up.mp4", expected_size=len(sample_bytes))
    tracemalloc.start()
    try:
        stored = VideoStorage().upload_video(
            padded_mp4(sample_bytes, size), "streamed.mp4", expected_size=size
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.file_size == size and stored.storage_path in bucket_keys()
    assert peak < 16 * MiB, f"peak {peak / MiB:.0f} MiB: the body was buffered"


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (1, 8 * MiB),
        (300 * MiB, 8 * MiB),
        (2 * GiB, 16 * MiB),
        (8 * GiB, 64 * MiB),
        (600 * GiB, 64 * MiB),
        (S3_MAX_PARTS * MAX_PART_BYTES, 64 * MiB),
    ],
)
def test_the_part_size_follows_the_length_within_s3s_limits(length, expected):
    size = part_size_for(length)
    assert size == expected
    assert S3_MIN_PART_BYTES <= size <= MAX_PART_BYTES and size % MiB == 0
    assert -(-length // size) <= S3_MAX_PARTS
    assert parts_in_flight(size) * size <= 32 * MiB or parts_in_flight(size) == 1


def test_a_length_that_would_need_parts_over_the_buffer_is_refused():
    with pytest.raises(ValueError, match="parts larger than 64 MiB"):
        part_size_for(S3_MAX_PARTS * MAX_PART_BYTES + 1)


def test_the_completion_waits_in_proportion_to_the_size():
    assert completion_read_timeout(256 * MiB, 60) == 60
    assert completion_read_timeout(2 * GiB, 60) == 128
    assert completion_read_timeout(2 * GiB, 5) == 128
    assert completion_read_timeout(MiB, 5) == 5


def test_the_streamed_put_sends_a_plain_unsigned_body_of_its_length(s3_server, sample_bytes):
    """No aws-chunked trailer or checksum headers (Supabase), and no payload hash: a
    stream cannot be read twice to sign it."""
    client = default_storage._client(read_timeout=90, payload_signing_enabled=False)
    config = client.meta.config
    assert config.read_timeout == 90
    assert config.s3 == {"addressing_style": "path", "payload_signing_enabled": False}
    assert config.request_checksum_calculation == "when_required"
    assert config.signature_version == "s3v4"
    sent = []
    client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request))
    put_stream(client, bucket=BUCKET, key="avatar_videos/plain.mp4", length=len(sample_bytes),
               body=io.BufferedReader(io.BytesIO(sample_bytes)), params={})  # fmt: skip
    (request,) = sent
    headers = {key.lower(): value.decode() if isinstance(value, bytes) else str(value)
               for key, value in request.headers.items()}  # fmt: skip
    assert headers["content-length"] == str(len(sample_bytes))
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert "content-encoding" not in headers and "x-amz-trailer" not in headers
    assert not any(key.startswith("x-amz-checksum-") for key in headers)
    stored = s3_server.client().get_object(Bucket=BUCKET, Key="avatar_videos/plain.mp4")
    assert stored["Body"].read() == sample_bytes


def test_the_storage_client_takes_its_timeouts_from_settings(settings, s3_server):
    from django.core.files.storage import storages

    from tests.servers import supabase_storage_settings

    options = supabase_storage_settings(s3_server, BUCKET)
    options.update(SUPABASE_S3_CONNECT_TIMEOUT_SECONDS=3, SUPABASE_S3_READ_TIMEOUT_SECONDS=7)
    for key, value in options.items():
        setattr(settings, key, value)
    config = storages["default"].connection.meta.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (3, 7)
