"""The streaming MP4 inspector, on real MP4s rendered by ffmpeg, fed in awkward chunk sizes."""

import struct
import tracemalloc
from pathlib import Path

import pytest

from avatars.providers.offline import render_script_video
from videostore.errors import InvalidVideo
from videostore.mp4 import Mp4Info, Mp4Inspector

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def mp4_files(tmp_path_factory) -> dict[str, bytes]:
    """The same 2 s 320x180 video three ways: moov first, moov last, fragmented."""
    directory = tmp_path_factory.mktemp("mp4-layouts")
    layouts = {
        "faststart": None,
        "moov-at-end": ["-movflags", "0"],
        "fragmented": ["-movflags", "frag_keyframe+empty_moov"],
    }
    return {
        name: render_script_video(
            "Layouts", directory / f"{name}.mp4", width=320, height=180, seconds=2,
            extra_args=extra,
        ).read_bytes()
        for name, extra in layouts.items()
    }  # fmt: skip


def top_level_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of each top-level box."""
    boxes, offset = [], 0
    while offset < len(data):
        size, box_type = struct.unpack_from(">I4s", data, offset)
        boxes.append((box_type, offset, size))
        offset += size
    return boxes


def inspect(data: bytes, chunk_size: int) -> Mp4Info:
    inspector = Mp4Inspector()
    for start in range(0, len(data), chunk_size):
        inspector.feed(data[start : start + chunk_size])
    return inspector.finish()


def test_ffmpeg_layouts_put_moov_where_the_tests_expect(mp4_files):
    order = {name: [box[0] for box in top_level_boxes(data)] for name, data in mp4_files.items()}
    assert order["faststart"].index(b"moov") < order["faststart"].index(b"mdat")
    assert order["moov-at-end"].index(b"moov") > order["moov-at-end"].index(b"mdat")


@pytest.mark.parametrize("layout", ["faststart", "moov-at-end"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64 * 1024])
def test_reads_duration_and_picture_size_whatever_the_chunking(mp4_files, layout, chunk_size):
    info = inspect(mp4_files[layout], chunk_size)
    assert info == Mp4Info(duration_seconds=2.0, width=320, height=180)


def test_fragmented_mp4_has_picture_size_but_no_header_duration(mp4_files):
    info = inspect(mp4_files["fragmented"], 7)
    assert (info.width, info.height) == (320, 180)
    assert info.duration_seconds is None


def test_64_bit_box_sizes_and_a_last_box_running_to_the_end(mp4_files):
    data = mp4_files["faststart"]
    mdat_type, mdat_offset, mdat_size = top_level_boxes(data)[-1]
    assert mdat_type == b"mdat"
    body = data[mdat_offset + 8 :]
    large = data[:mdat_offset] + struct.pack(">I4sQ", 1, b"mdat", mdat_size + 8) + body
    to_end = data[:mdat_offset] + struct.pack(">I4s", 0, b"mdat") + body
    expected = Mp4Info(duration_seconds=2.0, width=320, height=180)
    assert inspect(large, 5) == expected
    assert inspect(to_end, 5) == expected


def test_media_data_is_skipped_not_buffered(mp4_files):
    data = mp4_files["faststart"]
    zeros = bytes(MiB)
    inspector = Mp4Inspector()
    tracemalloc.start()
    try:
        inspector.feed(data)
        inspector.feed(struct.pack(">I4s", 64 * MiB + 8, b"free"))
        for _ in range(64):
            inspector.feed(zeros)
        info = inspector.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.width == 320
    assert peak < 2 * MiB


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"<!DOCTYPE html><html><body>Access denied</body></html>", "HTML"),
        (b'{"error": "expired"}', "JSON"),
        (b"\x00\x00\x00\x18moovxxxxxxxxxxxxxxxx", "ftyp"),
    ],
)
def test_anything_not_starting_with_ftyp_is_refused_at_once(body, reason):
    with pytest.raises(InvalidVideo, match=f"not an MP4 video.*{reason}"):
        Mp4Inspector().feed(body)


def test_an_empty_file_is_not_an_mp4():
    with pytest.raises(InvalidVideo, match="empty"):
        Mp4Inspector().finish()


@pytest.mark.parametrize("layout", ["faststart", "moov-at-end"])
@pytest.mark.parametrize("cut", [10, 100, 5000, -1])
def test_a_truncated_file_is_refused(mp4_files, layout, cut):
    data = mp4_files[layout]
    with pytest.raises(InvalidVideo, match="truncated"):
        inspect(data[:cut], 7)


def test_a_file_without_a_movie_header_is_refused(mp4_files):
    data = mp4_files["faststart"]
    without_moov = b"".join(
        data[offset : offset + size]
        for box_type, offset, size in top_level_boxes(data)
        if box_type != b"moov"
    )
    with pytest.raises(InvalidVideo, match="no movie header"):
        inspect(without_moov, 64 * 1024)


def test_an_implausibly_large_movie_header_is_refused_before_it_is_buffered(mp4_files):
    ftyp_size = top_level_boxes(mp4_files["faststart"])[0][2]
    inspector = Mp4Inspector(max_moov_bytes=MiB)
    inspector.feed(mp4_files["faststart"][:ftyp_size])
    with pytest.raises(InvalidVideo, match="implausibly large"):
        inspector.feed(struct.pack(">I4s", 2 * MiB, b"moov"))


@pytest.mark.parametrize(
    "box", [struct.pack(">I4s", 4, b"free"), struct.pack(">I4s", 16, b"\x00\x01\x02\x03")]
)
def test_corrupt_box_headers_are_refused(mp4_files, box):
    ftyp_size = top_level_boxes(mp4_files["faststart"])[0][2]
    inspector = Mp4Inspector()
    inspector.feed(mp4_files["faststart"][:ftyp_size])
    with pytest.raises(InvalidVideo, match="corrupt"):
        inspector.feed(box)


def test_a_garbled_movie_header_is_refused(mp4_files):
    data = bytearray(mp4_files["faststart"])
    _, moov_offset, _ = next(box for box in top_level_boxes(bytes(data)) if box[0] == b"moov")
    struct.pack_into(">I", data, moov_offset + 8, 0xFFFFFF)  # first child box overruns moov
    with pytest.raises(InvalidVideo, match="malformed"):
        inspect(bytes(data), 64 * 1024)


def test_sample_fixture_is_understood(sample_mp4: Path):
    info = inspect(sample_mp4.read_bytes(), 64 * 1024)
    assert info == Mp4Info(duration_seconds=2.0, width=320, height=180)
