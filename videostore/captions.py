"""Captions as WebVTT: a provider's file (SRT or VTT) made into WebVTT, or cues made from the
script and timed over the video's duration.

Text is kept exactly as written, right-to-left scripts included: no reordering, no bidi
marks added or removed, words never cut. Cues break at sentence ends (Latin, Arabic, Urdu,
CJK and Hebrew punctuation), and a long sentence at word boundaries.
"""

import re
import unicodedata
from dataclasses import dataclass

VTT_TYPE = "text/vtt"
#: A cue's text is at most this many characters (about two lines of a player's captions).
CUE_MAX_CHARS = 84
#: Captions are small text: a provider's file larger than this is not captions.
CAPTIONS_MAX_BYTES = 2 * 1024 * 1024
MIN_CUE_SECONDS = 0.5

_SENTENCE_END = re.compile(r"(?<=[.!?…。！？؟۔])[\"'”’»)\]]*\s+")
_SRT_TIME = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})[,.](\d{1,3})")
_SRT_TIMING = re.compile(rf"^\s*{_SRT_TIME.pattern}\s*-->\s*{_SRT_TIME.pattern}(.*)$")


class InvalidCaptions(ValueError):
    """The provider's captions are neither WebVTT nor SRT."""


@dataclass(frozen=True)
class Cue:
    """One caption: its text shown from `start` to `end` (seconds)."""

    start: float
    end: float
    text: str


def _timestamp(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def cues_to_vtt(cues: list[Cue]) -> str:
    """A WebVTT file of these cues."""
    blocks = ["WEBVTT", ""]
    for number, cue in enumerate(cues, start=1):
        # "-->" inside a cue's text would end it; blank lines would too.
        text = "\n".join(line for line in cue.text.replace("-->", "→").splitlines() if line)
        blocks += [str(number), f"{_timestamp(cue.start)} --> {_timestamp(cue.end)}", text, ""]
    return "\n".join(blocks)


def _chunks(sentence: str) -> list[str]:
    """A sentence in pieces of at most CUE_MAX_CHARS, cut between words (a single longer
    word stays whole)."""
    pieces, current = [], ""
    for word in sentence.split():
        if current and len(current) + 1 + len(word) > CUE_MAX_CHARS:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*pieces, current] if current else pieces


def script_cues(script: str, duration_seconds: float) -> list[Cue]:
    """The script as cues, split at sentence ends, each timed by its share of the script's
    characters over `duration_seconds` (a narrator reads at an even pace)."""
    text = unicodedata.normalize("NFC", script or "").strip()
    pieces = [chunk for sentence in _SENTENCE_END.split(text) for chunk in _chunks(sentence)]
    if not pieces:
        return []
    duration = max(float(duration_seconds or 0), MIN_CUE_SECONDS * len(pieces))
    total = sum(len(piece) for piece in pieces)
    cues, start = [], 0.0
    for index, piece in enumerate(pieces):
        end = duration if index == len(pieces) - 1 else start + duration * len(piece) / total
        cues.append(Cue(round(start, 3), round(end, 3), piece))
        start = end
    return cues


def script_to_vtt(script: str, duration_seconds: float) -> str:
    """WebVTT captions made from the script (see `script_cues`)."""
    return cues_to_vtt(script_cues(script, duration_seconds))


def _seconds(match: re.Match, offset: int) -> float:
    hours, minutes, secs, millis = (match.group(offset + i) for i in range(4))
    return int(hours) * 3600 + int(minutes) * 60 + int(secs) + int(millis.ljust(3, "0")) / 1000


def srt_to_vtt(text: str) -> str:
    """SubRip captions as WebVTT: the same cues and text, comma decimal marks made dots."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n").strip()):
        lines = block.split("\n")
        timing_at = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing_at is None:
            continue
        match = _SRT_TIMING.match(lines[timing_at])
        if match is None:
            raise InvalidCaptions(f"Not an SRT timing line: {lines[timing_at][:60]!r}.")
        cue_text = "\n".join(lines[timing_at + 1 :]).strip()
        if cue_text:
            cues.append(Cue(_seconds(match, 1), _seconds(match, 5), cue_text))
    if not cues:
        raise InvalidCaptions("The captions file holds no cues.")
    return cues_to_vtt(cues)


def as_webvtt(data: bytes) -> str:
    """A provider's captions file (WebVTT or SRT, UTF-8) as WebVTT text."""
    if len(data) > CAPTIONS_MAX_BYTES:
        raise InvalidCaptions(f"The captions file is larger than {CAPTIONS_MAX_BYTES} bytes.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidCaptions("The captions file is not UTF-8 text.") from error
    if text.lstrip().startswith("WEBVTT"):
        return text.lstrip().replace("\r\n", "\n")
    return srt_to_vtt(text)


def vtt_cue_texts(vtt: str) -> list[str]:
    """The text of each cue of a WebVTT file (for checks and tests)."""
    texts = []
    for block in re.split(r"\n\s*\n", vtt.replace("\r\n", "\n").strip()):
        lines = block.split("\n")
        timing_at = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing_at is not None:
            texts.append("\n".join(lines[timing_at + 1 :]))
    return texts
