"""Reading an MP4's header while its bytes stream past, without holding the file in memory.

`Mp4Inspector` walks the top-level boxes (ISO/IEC 14496-12) as chunks arrive: the first box
must be `ftyp`, media data (`mdat`) is skipped, and only the `moov` box is kept, whether it
comes before the media (fast start) or after it. `finish()` then reads the duration from
`mvhd` and the picture size from the video track's `tkhd`.
"""

import struct
from dataclasses import dataclass

from videostore.errors import InvalidVideo

MiB = 1024 * 1024
#: The movie header of a long, many-track video is a few MiB; anything larger is not a video
#: we made, and holding it would defeat the point of streaming.
MAX_MOOV_BYTES = 64 * MiB
_HEADER = struct.Struct(">I4s")
_LARGE_SIZE = struct.Struct(">Q")
_CONTAINERS = {b"moov", b"trak", b"mdia"}


@dataclass(frozen=True)
class Mp4Info:
    """What the header says about the video; None when the file does not say."""

    duration_seconds: float | None
    width: int | None
    height: int | None


def _describe_start(data: bytes) -> str:
    head = data.lstrip()[:15].lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<")):
        return "it looks like an HTML or XML page"
    if head.startswith((b"{", b"[")):
        return "it looks like JSON"
    return "it does not start with an ftyp box"


class Mp4Inspector:
    """Fed the file chunk by chunk (`feed`), then `finish()` for the header's facts."""

    def __init__(self, *, max_moov_bytes: int = MAX_MOOV_BYTES):
        self.max_moov_bytes = max_moov_bytes
        self._header = bytearray()  # the box header being read (8 or 16 bytes)
        self._skip = 0  # bytes of the current box still to pass over
        self._to_end = False  # the current box runs to the end of the file (size 0)
        self._moov: bytearray | None = None  # the moov box body, while or once captured
        self._moov_remaining = 0
        self._moov_to_end = False
        self._boxes = 0
        self._offset = 0

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the file; raises InvalidVideo as soon as they cannot be MP4."""
        view = memoryview(chunk)
        while view:
            if self._skip:
                taken = min(self._skip, len(view))
                self._skip -= taken
            elif self._moov_remaining or self._moov_to_end:
                taken = self._capture_moov(view)
            elif self._to_end:
                taken = len(view)
            else:
                taken = self._read_header(view)
            self._offset += taken
            view = view[taken:]

    def _capture_moov(self, view: memoryview) -> int:
        taken = len(view) if self._moov_to_end else min(self._moov_remaining, len(view))
        if len(self._moov) + taken > self.max_moov_bytes:
            raise InvalidVideo("The MP4's movie header (moov box) is implausibly large.")
        self._moov += view[:taken]
        if not self._moov_to_end:
            self._moov_remaining -= taken
        return taken

    def _read_header(self, view: memoryview) -> int:
        needed = 8
        if len(self._header) >= 8 and _HEADER.unpack_from(self._header)[0] == 1:
            needed = 16
        taken = min(needed - len(self._header), len(view))
        self._header += view[:taken]
        if len(self._header) == 8 and _HEADER.unpack_from(self._header)[0] == 1:
            return taken  # a 64-bit size follows; come back for it
        if len(self._header) == needed:
            self._start_box()
        return taken

    def _start_box(self) -> None:
        size, box_type = _HEADER.unpack_from(self._header)
        header_length = len(self._header)
        if header_length == 16:
            (size,) = _LARGE_SIZE.unpack_from(self._header, 8)
        if self._boxes == 0 and box_type != b"ftyp":
            start = _describe_start(bytes(self._header))
            raise InvalidVideo(f"The file is not an MP4 video: {start}.")
        self._boxes += 1
        self._header.clear()
        if not all(0x20 <= byte <= 0x7E for byte in box_type):
            raise InvalidVideo(f"The MP4 is corrupt: a box at byte {self._offset} has no name.")
        if size != 0 and size < header_length:
            raise InvalidVideo(f"The MP4 is corrupt: a box at byte {self._offset} is too small.")
        body = size - header_length if size else 0
        if box_type == b"moov" and self._moov is None:
            if body > self.max_moov_bytes:
                raise InvalidVideo("The MP4's movie header (moov box) is implausibly large.")
            self._moov = bytearray()
            self._moov_remaining = body
            self._moov_to_end = size == 0
        elif size == 0:
            self._to_end = True
        else:
            self._skip = body

    def finish(self) -> Mp4Info:
        """The end of the file: raises InvalidVideo if it was cut short or has no header."""
        if self._boxes == 0:
            if self._header:
                raise InvalidVideo("The file is not an MP4 video: it is too short.")
            raise InvalidVideo("The file is not an MP4 video: it is empty.")
        if self._header or self._skip or self._moov_remaining:
            raise InvalidVideo("The MP4 is truncated: its last box ends after the end of the file.")
        if self._moov is None:
            raise InvalidVideo("The MP4 has no movie header (moov box), so it cannot be played.")
        try:
            return _parse_moov(bytes(self._moov))
        except (struct.error, IndexError) as error:
            raise InvalidVideo("The MP4's movie header (moov box) is malformed.") from error


def _children(data: bytes, start: int = 0, end: int | None = None):
    """(type, body start, body end) of each box in data[start:end]."""
    end = len(data) if end is None else end
    position = start
    while position + 8 <= end:
        size, box_type = _HEADER.unpack_from(data, position)
        header_length = 8
        if size == 1:
            (size,) = _LARGE_SIZE.unpack_from(data, position + 8)
            header_length = 16
        elif size == 0:
            size = end - position
        if size < header_length or position + size > end:
            raise struct.error(f"box {box_type!r} overruns its parent")
        yield box_type, position + header_length, position + size
        position += size


def _parse_moov(moov: bytes) -> Mp4Info:
    duration = None
    width = height = None
    for box_type, start, end in _children(moov):
        if box_type == b"mvhd":
            duration = _mvhd_duration(moov, start)
        elif box_type == b"trak":
            track = _track(moov, start, end)
            if track is not None and width is None:
                width, height = track
    return Mp4Info(duration_seconds=duration, width=width, height=height)


def _mvhd_duration(data: bytes, start: int) -> float | None:
    version = data[start]
    if version == 1:
        timescale, duration = struct.unpack_from(">IQ", data, start + 20)
        unknown = 0xFFFFFFFFFFFFFFFF
    else:
        timescale, duration = struct.unpack_from(">II", data, start + 12)
        unknown = 0xFFFFFFFF
    if not timescale or not duration or duration == unknown:
        return None  # fragmented files and live recordings leave the duration out
    return round(duration / timescale, 3)


def _track(data: bytes, start: int, end: int) -> tuple[int | None, int | None] | None:
    """(width, height) when this trak is a video track, else None."""
    size = None
    handler = None
    for box_type, body_start, body_end in _children(data, start, end):
        if box_type == b"tkhd":
            size = _tkhd_size(data, body_start)
        elif box_type == b"mdia":
            for inner_type, inner_start, _ in _children(data, body_start, body_end):
                if inner_type == b"hdlr":
                    handler = data[inner_start + 8 : inner_start + 12]
    if handler != b"vide" or size is None:
        return None
    return size


def _tkhd_size(data: bytes, start: int) -> tuple[int | None, int | None]:
    # version/flags, times and ids (v0: 20 bytes, v1: 32), then 52 bytes of fixed fields.
    offset = start + (4 + 32 if data[start] == 1 else 4 + 20) + 52
    width, height = struct.unpack_from(">II", data, offset)
    return (width >> 16) or None, (height >> 16) or None
