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


def test_a_fragmented_mp4_is_refused_its_samples_cannot_be_checked(mp4_files):
    # Its header has no duration and no sample tables: the media is described in moof boxes.
    with pytest.raises(InvalidVideo, match="fragmented"):
        inspect(mp4_files["fragmented"], 7)


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


# --- Content checks: a video track with a picture, a duration, frames, data inside the file --


def box(box_type: bytes, *children: bytes) -> bytes:
    body = b"".join(children)
    return struct.pack(">I4s", 8 + len(body), box_type) + body


def full_box(box_type: bytes, body: bytes, version: int = 0) -> bytes:
    return box(box_type, struct.pack(">I", version << 24) + body)


def header_only_mp4(*, html: bytes, duration: int = 2000, samples: int = 0, offset: int = 0):
    """ftyp + a moov for a 320x180 video track (mvhd says `duration` ms) whose sample tables
    list `samples` samples of 1000 bytes in one chunk at `offset`, then a box of HTML."""
    mvhd = full_box(b"mvhd", struct.pack(">IIII", 0, 0, 1000, duration) + bytes(80))
    tkhd = full_box(b"tkhd", bytes(20) + bytes(52) + struct.pack(">II", 320 << 16, 180 << 16))
    hdlr = full_box(b"hdlr", struct.pack(">I4s", 0, b"vide") + bytes(12) + b"\\0")
    stbl = box(
        b"stbl",
        full_box(b"stsd", struct.pack(">I", 0)),
        full_box(b"stts", struct.pack(">I", 0)),
        full_box(b"stsc", struct.pack(">IIII", 1, 1, samples, 1) if samples else bytes(4)),
        full_box(b"stsz", struct.pack(">II", 1000 if samples else 0, samples)),
        full_box(b"stco", struct.pack(">II", 1, offset) if samples else bytes(4)),
    )
    trak = box(b"trak", tkhd, box(b"mdia", hdlr, box(b"minf", stbl)))
    return box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41") + box(
        b"moov", mvhd, trak
    ) + box(b"html", html)  # fmt: skip


def html_header_mp4() -> bytes:
    """The 346-byte case: an MP4 header (ftyp, a moov with only its mvhd) and no media, then
    an HTML page in a box of its own."""
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")
    mvhd = full_box(b"mvhd", struct.pack(">IIII", 0, 0, 1000, 2000) + bytes(80))
    head = ftyp + box(b"moov", mvhd)
    page = b"<!DOCTYPE html><html><head><title>403</title></head><body>Access denied</body></html>"
    return head + box(b"html", page.ljust(346 - len(head) - 8, b"\n"))


def test_an_mp4_header_with_no_media_and_an_html_box_is_refused():
    data = html_header_mp4()
    assert len(data) == 346 and data[4:8] == b"ftyp" and b"<html>" in data
    with pytest.raises(InvalidVideo, match="no video track"):
        inspect(data, 64)


def test_a_video_track_without_frames_is_refused():
    with pytest.raises(InvalidVideo, match="video track has no frames"):
        inspect(header_only_mp4(html=b"<html></html>"), 64)


def test_sample_data_pointing_beyond_the_end_of_the_file_is_refused():
    data = header_only_mp4(html=b"<html></html>", samples=25, offset=200)
    with pytest.raises(
        InvalidVideo,
        match=rf"its video track's data reaches byte 25200, beyond the end of the {len(data)}-byte",
    ):
        inspect(data, 7)


def test_the_same_tables_pointing_inside_the_file_pass():
    head = header_only_mp4(html=b"", samples=25, offset=0)
    data = header_only_mp4(html=bytes(25_000), samples=25, offset=len(head))
    assert inspect(data, 1000) == Mp4Info(duration_seconds=2.0, width=320, height=180)


def test_a_header_without_duration_is_refused():
    with pytest.raises(InvalidVideo, match="no duration"):
        inspect(header_only_mp4(html=b"", duration=0), 64)


def patch_moov(data: bytes, pattern: bytes, replacement: bytes) -> bytes:
    assert data.count(pattern) == 1 and len(pattern) == len(replacement)
    return data.replace(pattern, replacement)


@pytest.mark.parametrize("layout", ["faststart", "moov-at-end"])
def test_a_file_without_a_video_track_is_refused(mp4_files, layout):
    data = mp4_files[layout]
    vide_at = data.index(b"vide", data.index(b"hdlr"))
    audio_only = data[:vide_at] + b"soun" + data[vide_at + 4 :]
    with pytest.raises(InvalidVideo, match="no video track"):
        inspect(audio_only, 64 * 1024)


@pytest.mark.parametrize("layout", ["faststart", "moov-at-end"])
def test_media_data_cut_out_of_a_well_formed_file_is_refused(mp4_files, layout):
    # The boxes stay consistent (mdat shrunk to 16 bytes) but the chunk offsets still point
    # at the media that is gone.
    data = mp4_files[layout]
    rebuilt = b""
    for box_type, offset, size in top_level_boxes(data):
        if box_type == b"mdat":
            rebuilt += struct.pack(">I4s", 24, b"mdat") + data[offset + 8 : offset + 24]
        else:
            rebuilt += data[offset : offset + size]
    with pytest.raises(InvalidVideo, match="beyond the end of the"):
        inspect(rebuilt, 64 * 1024)


CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def stco_to_co64(data: bytes, shift: int = 0) -> bytes:
    """The boxes of `data` with every stco rewritten as co64 (offsets + `shift`)."""
    out = b""
    for box_type, offset, size in top_level_boxes(data):
        body = data[offset + 8 : offset + size]
        if box_type in CONTAINERS:
            body = stco_to_co64(body, shift)
        elif box_type == b"stco":
            (count,) = struct.unpack_from(">I", body, 4)
            offsets = struct.unpack_from(f">{count}I", body, 8)
            box_type = b"co64"
            body = body[:8] + struct.pack(f">{count}Q", *(o + shift for o in offsets))
        out += struct.pack(">I4s", 8 + len(body), box_type) + body
    return out


def test_64_bit_chunk_offsets_are_read(mp4_files):
    data = mp4_files["moov-at-end"]  # media before moov: widening moov moves no sample
    assert b"stco" in data
    co64 = stco_to_co64(data)
    assert b"stco" not in co64 and b"co64" in co64
    assert inspect(co64, 7) == Mp4Info(duration_seconds=2.0, width=320, height=180)
    with pytest.raises(InvalidVideo, match="beyond the end"):
        inspect(stco_to_co64(data, shift=2**33), 64 * 1024)


@pytest.mark.parametrize("layout", ["faststart", "moov-at-end"])
def test_disagreeing_sample_tables_are_malformed(mp4_files, layout):
    data = bytearray(mp4_files[layout])
    stsz = data.index(b"stsz")
    (count,) = struct.unpack_from(">I", data, stsz + 12)
    struct.pack_into(">I", data, stsz + 12, count - 1)  # one sample fewer than stsc places
    with pytest.raises(InvalidVideo, match="malformed"):
        inspect(bytes(data), 64 * 1024)


@pytest.mark.parametrize("movflags", [None, ["-movflags", "0"]], ids=["faststart", "moov-last"])
def test_videos_the_offline_renderer_makes_pass(tmp_path, movflags):
    path = render_script_video("Checks", tmp_path / "v.mp4", width=640, height=360, seconds=3,
                               extra_args=movflags)  # fmt: skip
    assert inspect(path.read_bytes(), 1000) == Mp4Info(3.0, 640, 360)
