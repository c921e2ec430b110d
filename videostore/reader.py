"""The reader a video streams through on its way into storage: it counts, hashes and inspects
every byte and raises InvalidVideo as soon as a check fails, so the backend's upload fails
with it; memory stays bounded whatever the file size."""

import hashlib
import io
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from videostore.errors import CopyMismatch, InvalidVideo
from videostore.mp4 import Mp4Info, Mp4Inspector

MP4_TYPE = "video/mp4"
READ_SIZE = 1024 * 1024


def _chunks_of(stream: Iterable[bytes] | BinaryIO | bytes) -> Iterator[bytes]:
    if isinstance(stream, bytes | bytearray | memoryview):
        yield bytes(stream)
    elif hasattr(stream, "read"):
        while data := stream.read(READ_SIZE):
            yield data
    else:
        yield from stream


class _StreamReader(io.RawIOBase):
    """A read-only, non-seekable stream over chunks that subclasses check as they arrive
    (`_next_chunk`, b"" at the end); storage backends read it like a file (`read(n)`, or
    `chunks()` for local files). `failure` keeps what a read raised: a client sending the
    body may wrap it in its own error."""

    def __init__(self):
        super().__init__()
        self.failure: BaseException | None = None
        self._pending = b""
        self._offset = 0  # into _pending: small reads copy only what they return

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int | None = -1) -> bytes:
        if self.failure is not None:
            raise self.failure
        try:
            return self._read(size)
        except BaseException as error:
            self.failure = error
            raise

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def chunks(self, chunk_size: int = READ_SIZE) -> Iterator[bytes]:
        while data := self.read(chunk_size):
            yield data

    def _read(self, size: int | None) -> bytes:
        wanted = float("inf") if size is None or size < 0 else size
        pieces, have = [], 0
        while have < wanted:
            if self._offset == len(self._pending):
                self._pending, self._offset = self._next_chunk(), 0
                if not self._pending:
                    break
            take = int(min(wanted - have, len(self._pending) - self._offset))
            if self._offset == 0 and take == len(self._pending):
                pieces.append(self._pending)
            else:
                pieces.append(self._pending[self._offset : self._offset + take])
            self._offset += take
            have += take
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    @abstractmethod
    def _next_chunk(self) -> bytes:
        """The next chunk of the source (each subclass's own), b"" at its end."""


class VerifyingReader(_StreamReader):
    """A read-only, non-seekable stream over the video that checks it while it is read.

    Storage backends read it like a file (`read(n)`, or `chunks()` for local files). It
    counts, hashes and inspects every byte and raises InvalidVideo as soon as a check fails,
    so the backend's upload fails with it. `failure` keeps what it raised.
    """

    def __init__(
        self,
        stream,
        *,
        name: str,
        max_bytes: int,
        expected_size: int | None,
        on_bytes: Callable[[int], None] | None = None,
    ):
        super().__init__()
        self.name = name
        self.on_bytes = on_bytes
        self.content_type = MP4_TYPE  # read by django-storages for the object's ContentType
        self.max_bytes = max_bytes
        self.expected_size = expected_size
        self.bytes_read = 0
        self.sha256 = hashlib.sha256()
        self.info: Mp4Info | None = None
        self._source = _chunks_of(stream)
        self._inspector = Mp4Inspector()
        self._eof = False

    @property
    def size(self) -> int | None:
        """The announced length (None when unknown): backends pick how to upload by it."""
        return self.expected_size

    def _next_chunk(self) -> bytes:
        if self._eof:
            return b""
        for chunk in self._source:
            if chunk:
                chunk = bytes(chunk)  # no copy for bytes; bytearray/memoryview are frozen
                self._check(chunk)
                return chunk
        self._eof = True
        self._check_end()
        return b""

    def _check(self, chunk: bytes) -> None:
        self.bytes_read += len(chunk)
        if self.bytes_read > self.max_bytes:
            raise InvalidVideo(f"The video is larger than the {self.max_bytes}-byte limit.")
        if self.expected_size is not None and self.bytes_read > self.expected_size:
            raise InvalidVideo(
                f"The video is longer than the {self.expected_size} bytes announced "
                "(length mismatch)."
            )
        self._inspector.feed(chunk)
        self.sha256.update(chunk)
        if self.on_bytes is not None:
            self.on_bytes(self.bytes_read)  # may raise to stop the upload (a lost lease)

    def _check_end(self) -> None:
        if self.expected_size is not None and self.bytes_read != self.expected_size:
            raise InvalidVideo(
                f"The video was truncated: {self.bytes_read} of the {self.expected_size} "
                "bytes announced arrived."
            )
        self.info = self._inspector.finish()


class CopyReader(_StreamReader):
    """A read-only stream over an object being copied between storages: it counts and hashes
    every byte and raises CopyMismatch as soon as more bytes arrive than announced, or at the
    end when fewer did. Storage backends read it as they read VerifyingReader (`size` picks
    one streamed PUT or parts)."""

    def __init__(self, chunks: Iterable[bytes], *, name: str, size: int, content_type: str,
                 on_bytes: Callable[[int], None] | None = None):  # fmt: skip
        super().__init__()
        self.name = name
        self.size = size
        self.content_type = content_type
        self.on_bytes = on_bytes
        self.bytes_read = 0
        self.sha256 = hashlib.sha256()
        self.complete = False
        self._source = iter(chunks)

    def _next_chunk(self) -> bytes:
        for chunk in self._source:
            if chunk:
                chunk = bytes(chunk)
                self.bytes_read += len(chunk)
                if self.bytes_read > self.size:
                    raise CopyMismatch(f"{self.name}: more than the {self.size} bytes expected.")
                self.sha256.update(chunk)
                if self.on_bytes is not None:
                    self.on_bytes(self.bytes_read)  # may raise to stop the copy (a lost lease)
                return chunk
        if self.bytes_read != self.size:
            raise CopyMismatch(f"{self.name}: {self.bytes_read} of the {self.size} bytes "
                               "expected arrived.")  # fmt: skip
        self.complete = True
        return b""
