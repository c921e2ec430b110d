"""Reading an MP4's header while its bytes stream past, without holding the file in memory.

`Mp4Inspector` walks the top-level boxes (ISO/IEC 14496-12) as chunks arrive: the first box
must be `ftyp`, media data (`mdat`) is skipped, and only the `moov` box is kept, whether it
comes before the media (fast start) or after it. `finish()` then reads the duration from
`mvhd` and the picture size from the video track's `tkhd`, and checks that the file is a
video we can play: a video track with a picture size and frames, a duration, and every
chunk of sample data (`stco`/`co64` offsets, `stsc` and `stsz` sizes) inside the file.
"""

import struct
import sys
from array import array
from dataclasses import dataclass

from videostore.errors import InvalidVideo

MiB = 1024 * 1024
#: The movie header of a long, many-track video is a few MiB; anything larger is not a video
#: we made, and holding it would defeat the point of streaming.
MAX_MOOV_BYTES = 64 * MiB
_HEADER = struct.Struct(">I4s")
_LARGE_SIZE = struct.Struct(">Q")


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
            tracks, duration, fragmented = _parse_moov(bytes(self._moov))
        except (struct.error, IndexError, ValueError) as error:
            raise InvalidVideo("The MP4's movie header (moov box) is malformed.") from error
        return _playable(tracks, duration, fragmented, file_size=self._offset)


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


_KINDS = {b"vide": "video", b"soun": "audio", b"text": "text", b"sbtl": "subtitle"}


@dataclass(frozen=True)
class _Track:
    """What one trak says: its kind, picture size, frames, and where its data ends."""

    handler: bytes | None
    width: int | None
    height: int | None
    sample_count: int
    data_end: int  # the furthest byte any of its chunks reaches (absolute file offset)


def _parse_moov(moov: bytes) -> tuple[list[_Track], float | None, bool]:
    """(tracks, duration in seconds, fragmented) from the moov box's body."""
    duration = None
    tracks = []
    fragmented = False
    for box_type, start, end in _children(moov):
        if box_type == b"mvhd":
            duration = _mvhd_duration(moov, start)
        elif box_type == b"trak":
            tracks.append(_track(moov, start, end))
        elif box_type == b"mvex":  # the samples are described in movie fragments (moof)
            fragmented = True
    return tracks, duration, fragmented


def _playable(
    tracks: list[_Track], duration: float | None, fragmented: bool, *, file_size: int
) -> Mp4Info:
    """The header's facts, once it is shown to describe a video whose data is in the file."""
    if fragmented:
        raise InvalidVideo(
            "The MP4 is fragmented (its media is described in movie fragments); only "
            "regular MP4s are stored."
        )
    video = next((t for t in tracks if t.handler == b"vide" and t.width and t.height), None)
    if video is None:
        raise InvalidVideo("The MP4 has no video track with a picture size, so it is no video.")
    if not duration:
        raise InvalidVideo("The MP4's header gives no duration, so it cannot be played.")
    if video.sample_count == 0:
        raise InvalidVideo("The MP4's video track has no frames.")
    for track in tracks:
        if track.data_end > file_size:
            kind = _KINDS.get(track.handler, "other")
            raise InvalidVideo(
                f"The MP4 is corrupt: its {kind} track's data reaches byte {track.data_end}, "
                f"beyond the end of the {file_size}-byte file."
            )
    return Mp4Info(duration_seconds=duration, width=video.width, height=video.height)


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


def _track(data: bytes, start: int, end: int) -> _Track:
    size = (None, None)
    handler = None
    sample_count = data_end = 0
    for box_type, body_start, body_end in _children(data, start, end):
        if box_type == b"tkhd":
            size = _tkhd_size(data, body_start)
        elif box_type == b"mdia":
            for inner_type, inner_start, inner_end in _children(data, body_start, body_end):
                if inner_type == b"hdlr":
                    handler = data[inner_start + 8 : inner_start + 12]
                elif inner_type == b"minf":
                    stbl = _child(data, inner_start, inner_end, b"stbl")
                    if stbl is not None:
                        sample_count, data_end = _sample_table(data, *stbl)
    return _Track(handler, size[0], size[1], sample_count, data_end)


def _tkhd_size(data: bytes, start: int) -> tuple[int | None, int | None]:
    # version/flags, times and ids (v0: 20 bytes, v1: 32), then 52 bytes of fixed fields.
    offset = start + (4 + 32 if data[start] == 1 else 4 + 20) + 52
    width, height = struct.unpack_from(">II", data, offset)
    return (width >> 16) or None, (height >> 16) or None


def _child(data: bytes, start: int, end: int, wanted: bytes) -> tuple[int, int] | None:
    """(body start, body end) of the first child box of this type."""
    for box_type, body_start, body_end in _children(data, start, end):
        if box_type == wanted:
            return body_start, body_end
    return None


def _uints(data: bytes, start: int, count: int, width: int, end: int) -> array:
    """`count` big-endian unsigned ints of `width` bytes at `start`, compactly (not a list)."""
    stop = start + count * width
    if stop > end:
        raise struct.error("a sample table overruns its box")
    values = array("I" if width == 4 else "Q", data[start:stop])
    if values.itemsize != width:
        raise ValueError("unexpected array item size")
    if sys.byteorder == "little":
        values.byteswap()
    return values


def _sample_table(data: bytes, start: int, end: int) -> tuple[int, int]:
    """(sample count, furthest byte reached by a chunk's data) from an stbl box."""
    boxes = {}
    for box_type, body_start, body_end in _children(data, start, end):
        boxes.setdefault(box_type, (body_start, body_end))
    offsets = _chunk_offsets(data, boxes)
    uniform, sizes, count = _sample_sizes(data, boxes)
    if not offsets or not count:
        return count, 0
    if b"stsc" not in boxes:
        raise ValueError("no sample-to-chunk table")
    stsc_start, stsc_end = boxes[b"stsc"]
    (runs,) = struct.unpack_from(">I", data, stsc_start + 4)
    table = _uints(data, stsc_start + 8, runs * 3, 4, stsc_end)
    firsts, per_chunk = table[0::3], table[1::3]
    sample = data_end = 0
    run = -1
    for chunk, offset in enumerate(offsets, start=1):
        while run + 1 < runs and firsts[run + 1] <= chunk:
            run += 1
        samples = per_chunk[run] if run >= 0 else 0
        if sample + samples > count:
            raise ValueError("the sample tables disagree")
        chunk_bytes = samples * uniform if uniform else sum(sizes[sample : sample + samples])
        sample += samples
        if chunk_bytes:
            data_end = max(data_end, offset + chunk_bytes)
    if sample != count:
        raise ValueError("the sample tables disagree")
    return count, data_end


def _chunk_offsets(data: bytes, boxes: dict) -> array:
    for box_type, width in ((b"stco", 4), (b"co64", 8)):
        if box_type in boxes:
            start, end = boxes[box_type]
            (count,) = struct.unpack_from(">I", data, start + 4)
            return _uints(data, start + 8, count, width, end)
    return array("I")


def _sample_sizes(data: bytes, boxes: dict) -> tuple[int, array | None, int]:
    """(uniform size or 0, per-sample sizes or None, sample count) from stsz or stz2."""
    if b"stsz" in boxes:
        start, end = boxes[b"stsz"]
        uniform, count = struct.unpack_from(">II", data, start + 4)
        return uniform, None if uniform else _uints(data, start + 12, count, 4, end), count
    if b"stz2" in boxes:  # compact sizes: 4, 8 or 16 bits each
        start, end = boxes[b"stz2"]
        field_size, count = data[start + 7], struct.unpack_from(">I", data, start + 8)[0]
        if field_size not in (4, 8, 16):
            raise ValueError("bad stz2 field size")
        raw = data[start + 12 : end]
        if field_size == 16:
            sizes = array("I", struct.unpack_from(f">{count}H", raw))
        elif field_size == 8:
            sizes = array("I", raw[:count])
        else:
            nibbles = [n for byte in raw for n in (byte >> 4, byte & 15)]
            sizes = array("I", nibbles[:count])
        if len(sizes) != count:
            raise struct.error("stz2 overruns its box")
        return 0, sizes, count
    return 0, None, 0
