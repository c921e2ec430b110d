"""A stream of known length into S3: one streamed PUT when it is small enough, otherwise a
multipart upload whose part size follows the length.

Videos arrive as non-seekable streams that are verified while they are read (sha256, MP4
checks, exact length), so every byte is read once, in order, and memory holds at most a few
parts. s3transfer picks its part size before it knows the length and buffers a whole PUT in
memory, so a stream whose length is announced goes through here instead.
"""

import logging
import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
#: S3's limits: parts other than the last are at least 5 MiB; at most 10,000 parts.
S3_MIN_PART_BYTES = 5 * MiB
S3_MAX_PARTS = 10_000
#: The smallest part sent (fewer requests than S3's minimum) and the largest part buffer.
MIN_PART_BYTES = 8 * MiB
MAX_PART_BYTES = 64 * MiB
#: Big files get about this many parts (fewer, larger requests), within the bounds above.
TARGET_PARTS = 128
#: Parts in memory while they upload (reading the next one takes a slot first): 3 of 8 MiB,
#: 2 of 16 MiB, 1 of 32 or 64 MiB.
PARTS_IN_FLIGHT_BYTES = 32 * MiB
MAX_PARTS_IN_FLIGHT = 3
#: A completion (and a single PUT's answer) may take this long per byte beyond the usual read
#: timeout: Supabase's server took 5.8 s to complete 256 MiB (44 MiB/s); a third of that rate
#: leaves room for a slower day.
COMPLETION_BYTES_PER_SECOND = 16 * MiB


def part_size_for(length: int) -> int:
    """The part size for an object of `length` bytes: about TARGET_PARTS parts of 8 to 64 MiB
    (whole MiB), never more than S3's 10,000 parts. Raises ValueError when even 64 MiB parts
    would need more than 10,000 (above 625 GiB): memory stays bounded."""
    if length < 0:
        raise ValueError("A length cannot be negative.")
    wanted = max(math.ceil(length / TARGET_PARTS), math.ceil(length / S3_MAX_PARTS))
    size = max(MIN_PART_BYTES, S3_MIN_PART_BYTES, math.ceil(wanted / MiB) * MiB)
    if size > MAX_PART_BYTES:
        if math.ceil(length / MAX_PART_BYTES) > S3_MAX_PARTS:
            raise ValueError(
                f"{length} bytes would need parts larger than {MAX_PART_BYTES // MiB} MiB "
                f"(S3 allows {S3_MAX_PARTS} parts)."
            )
        size = MAX_PART_BYTES
    return size


def parts_in_flight(part_size: int) -> int:
    """How many parts upload at once while the next one is read (memory stays bounded)."""
    return max(1, min(MAX_PARTS_IN_FLIGHT, PARTS_IN_FLIGHT_BYTES // part_size))


def completion_read_timeout(length: int, read_timeout: float) -> float:
    """The read timeout for the call that makes `length` bytes an object: the usual one, or
    more in proportion to the size (about 128 s at 2 GiB)."""
    return max(read_timeout, length / COMPLETION_BYTES_PER_SECOND)


class _VerifiedBeforeLastByte:
    """The body of a streamed PUT: reads the source, and before handing over the last byte
    reads once more so that the source's end-of-stream checks (length, MP4) run while the
    request is still incomplete; a failed check then never becomes an object."""

    def __init__(self, source: BinaryIO, length: int):
        self._source = source
        self._length = length
        self._sent = 0

    def read(self, size: int = -1) -> bytes:
        wanted = self._length - self._sent if size is None or size < 0 else size
        data = self._source.read(min(wanted, self._length - self._sent))
        self._sent += len(data)
        if data and self._sent >= self._length:
            self._source.read(1)  # the end: the source's last checks raise here
        return data


def put_stream(client, *, bucket: str, key: str, body: BinaryIO, length: int, params: dict):
    """One PUT that streams `length` bytes of `body` (never held in memory at once). The
    client must not sign the payload (it would read the stream twice) and must wait long
    enough for the answer; a failed read fails the request."""
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=_VerifiedBeforeLastByte(body, length),
        ContentLength=length,
        **params,
    )


def multipart_stream(
    client,
    completion_client,
    *,
    bucket: str,
    key: str,
    body: BinaryIO,
    length: int,
    params: dict,
):
    """A multipart upload of `body`, parts sized by `length`, a few uploading while the next
    is read; `completion_client` (a longer read timeout) completes it. Any failure aborts the
    upload (best effort: `reconcile_storage` aborts what a cut link leaves)."""
    part_size = part_size_for(length)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **params)["UploadId"]
    try:
        parts = _send_parts(client, bucket, key, upload_id, body, part_size)
        completion_client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as error:  # the upload's own error is the one raised
            logger.warning("abort of the multipart upload of %s failed; reconcile_storage "
                           "will abort it: %s", key, error.__class__.__name__)  # fmt: skip
        raise


def _send_parts(client, bucket, key, upload_id, body: BinaryIO, part_size: int) -> list[dict]:
    in_flight = parts_in_flight(part_size)
    pending: deque[tuple[int, Future]] = deque()
    parts: list[dict] = []

    def finish_oldest() -> None:
        number, future = pending.popleft()
        parts.append({"PartNumber": number, "ETag": future.result()["ETag"]})

    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="upload-part") as pool:
        try:
            number = 0
            while True:
                if len(pending) >= in_flight:
                    finish_oldest()  # bounded memory: a slot frees before the next read
                data = body.read(part_size)
                if not data:
                    break
                number += 1
                pending.append((number, pool.submit(
                    client.upload_part, Bucket=bucket, Key=key, UploadId=upload_id,
                    PartNumber=number, Body=data,
                )))  # fmt: skip
                del data
            while pending:
                finish_oldest()
        finally:
            for _, future in pending:
                future.cancel()
    return parts
