"""The poster and captions makers on their own: WebVTT from SRT and from scripts, JPEG frames
and the placeholder."""

from videostore.captions import (
    CUE_MAX_CHARS,
    as_webvtt,
    script_cues,
    script_to_vtt,
    srt_to_vtt,
    vtt_cue_texts,
)
from videostore.posters import image_as_jpeg, is_jpeg, placeholder_jpeg, video_poster

SRT = (
    "1\r\n00:00:00,000 --> 00:00:01,500\r\nHello class.\r\n\r\n"
    "2\r\n00:00:01,500 --> 00:00:03,250\r\nשלום לכולם,\r\nהיום נלמד.\r\n"
)


def test_srt_becomes_webvtt_with_the_same_cues():
    vtt = srt_to_vtt(SRT)
    assert vtt.startswith("WEBVTT\n\n")
    assert "00:00:00.000 --> 00:00:01.500" in vtt and "00:00:01.500 --> 00:00:03.250" in vtt
    assert vtt_cue_texts(vtt) == ["Hello class.", "שלום לכולם,\nהיום נלמד."]


def test_a_provider_file_is_read_as_webvtt_whatever_it_came_as():
    assert vtt_cue_texts(as_webvtt(("\ufeff" + SRT).encode())) == vtt_cue_texts(srt_to_vtt(SRT))
    vtt = "WEBVTT\n\n00:00.000 --> 00:01.000\nHi\n"
    assert as_webvtt(vtt.encode()) == vtt


def test_script_cues_split_at_sentence_ends_and_cover_the_duration():
    cues = script_cues("One. Two is longer! Three? And the end", 10)
    assert [cue.text for cue in cues] == ["One.", "Two is longer!", "Three?", "And the end"]
    assert cues[0].start == 0 and cues[-1].end == 10
    assert all(a.end == b.start for a, b in zip(cues, cues[1:], strict=False))
    assert cues[1].end - cues[1].start > cues[0].end - cues[0].start  # by length


def test_right_to_left_and_arabic_punctuation_kept_intact():
    script = "مرحبا بكم؟ اليوم نتعلم. שלום! \u200fמה שלומכם?"
    texts = [cue.text for cue in script_cues(script, 8)]
    assert texts == ["مرحبا بكم؟", "اليوم نتعلم.", "שלום!", "\u200fמה שלומכם?"]


def test_a_long_sentence_is_cut_between_words():
    sentence = " ".join(["photosynthesis"] * 30) + "."
    cues = script_cues(sentence, 30)
    assert len(cues) > 1 and all(len(cue.text) <= CUE_MAX_CHARS for cue in cues)
    assert " ".join(cue.text for cue in cues) == sentence


def test_an_empty_script_gives_an_empty_but_valid_file():
    assert script_to_vtt("", 3) == "WEBVTT\n"


def test_a_frame_of_a_video_is_a_jpeg(sample_mp4):
    jpeg, source = video_poster(str(sample_mp4), duration_seconds=2.0)
    assert source == "frame" and is_jpeg(jpeg)


def test_no_frame_gives_the_placeholder(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    jpeg, source = video_poster(str(broken), duration_seconds=None)
    assert source == "placeholder" and jpeg == placeholder_jpeg() and is_jpeg(jpeg)


def test_a_png_thumbnail_becomes_a_jpeg(sample_mp4, tmp_path):
    import subprocess

    import imageio_ffmpeg

    png = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(sample_mp4),
         "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert not is_jpeg(png) and is_jpeg(image_as_jpeg(png))
