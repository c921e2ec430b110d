"""What a batch of scripts will make, shown before any render is requested: the videos in
order (each with its length and estimated spoken time), the rows left out and why, and how
a CSV file was read (its delimiter, a header row or not).

The reading rules live here once, for the studio's preview and confirm and for the
commands' --dry-run; `topics.scripts.parse_batch` puts a text box and a file through them.
"""

import csv
import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError

from topics.validators import default_title, validate_script, validate_title

#: A narrator's pace: about 150 words a minute.
WORDS_PER_MINUTE = 150
#: The delimiters a CSV may use, with the word the preview shows for each.
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
_SNIFF_CHARS = 16 * 1024


def spoken_seconds(script: str) -> int:
    """Roughly how long an avatar takes to say `script`, at WORDS_PER_MINUTE (at least 1 s)."""
    return max(1, round(len(script.split()) * 60 / WORDS_PER_MINUTE))


def format_duration(seconds: int) -> str:
    """~40 s, ~2 min 5 s."""
    if seconds < 60:
        return f"~{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"~{minutes} min {rest} s" if rest else f"~{minutes} min"


@dataclass(frozen=True)
class PlannedVideo:
    """One video the batch will make: its number in the batch, where it came from."""

    number: int
    script: str
    title: str
    source: str  # "Block 2", "Row 3"

    @property
    def characters(self) -> int:
        return len(self.script)

    @property
    def shown_title(self) -> str:
        """The title the video gets: the given one, else the default from the script."""
        return self.title or default_title(self.script)

    @property
    def seconds(self) -> int:
        return spoken_seconds(self.script)

    @property
    def duration(self) -> str:
        return format_duration(self.seconds)


@dataclass(frozen=True)
class SkippedRow:
    """A block or row that makes no video, and why (empty, malformed, too long)."""

    source: str
    reason: str


@dataclass(frozen=True)
class ScriptBatch:
    """The videos a submission will make, in order, and what was left out."""

    videos: list[PlannedVideo]
    skipped: list[SkippedRow] = field(default_factory=list)
    dialect: str = ""  # how a CSV file was read; "" for text

    @property
    def scripts(self) -> list[str]:
        return [video.script for video in self.videos]

    @property
    def titles(self) -> list[str]:
        return [video.title for video in self.videos]

    @property
    def total_seconds(self) -> int:
        return sum(video.seconds for video in self.videos)

    @property
    def total_duration(self) -> str:
        return format_duration(self.total_seconds)

    @property
    def digest(self) -> str:
        """Names exactly these scripts and titles: Confirm renders only what was previewed."""
        payload = json.dumps([self.scripts, self.titles], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()


def _checked(script: str, title: str) -> str:
    """ "" when the script and title may be rendered, else the reason they may not."""
    try:
        validate_script(script)
    except ValidationError as error:
        if error.error_list[0].code == "long_script":
            limit = settings.AVATAR_SCRIPT_MAX_CHARS
            return f"too long: {len(script):,} characters, the limit is {limit:,}"
        return "empty: no script"
    if title.strip():
        try:
            validate_title(title)
        except ValidationError as error:
            return f"malformed: {error.messages[0][0].lower()}{error.messages[0][1:]}"
    return ""


def plan(lessons: list[tuple[str, str, str]], *, dialect: str = "",
         skipped: list[SkippedRow] | None = None) -> ScriptBatch:  # fmt: skip
    """(source, script, title) candidates -> the batch: the ones that may be rendered,
    numbered in order, the others skipped with their reason."""
    skipped = list(skipped or [])
    videos: list[PlannedVideo] = []
    for source, script, title in lessons:
        script, title = script.strip(), title.strip()
        reason = _checked(script, title)
        if reason:
            skipped.append(SkippedRow(source, reason))
        else:
            videos.append(PlannedVideo(len(videos) + 1, script, title, source))
    return ScriptBatch(videos=videos, skipped=skipped, dialect=dialect)


def _delimiter(text: str) -> str:
    """The delimiter of the header row naming a `script` column; else csv.Sniffer's guess
    among DELIMITERS; else a comma (a file of one column)."""
    first_line = text.split("\n", 1)[0]
    for delimiter in DELIMITERS:
        if "script" in [cell.strip().strip('"').lower() for cell in first_line.split(delimiter)]:
            return delimiter
    try:
        return csv.Sniffer().sniff(text[:_SNIFF_CHARS], delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","


def _explain(error: csv.Error) -> str:
    message = str(error)
    if "expected after" in message:
        return "a quote in the middle of a cell (quote the whole cell, and double inner quotes)"
    return message


def _read_rows(text: str, delimiter: str) -> tuple[list[tuple[int, list[str]]], list[SkippedRow]]:
    """Each row with the line it starts on; rows the csv module cannot read are skipped. An
    unclosed quote would swallow every row after it: refused, with the line it opens on."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    skipped: list[SkippedRow] = []
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                raise ValidationError(
                    f"Row {start} opens a quote that is never closed, so every row after it "
                    "would become part of its script. Close the quote and upload again.",
                    code="unclosed_quote",
                ) from error
            skipped.append(SkippedRow(f"Row {start}", f"malformed: {_explain(error)}"))
            continue
        rows.append((start, cells))
    while rows and not rows[-1][1]:  # the blank lines a file ends with
        rows.pop()
    return rows, skipped


def _width(cells: list[str]) -> int:
    """Cells up to the last non-blank one."""
    return max((i + 1 for i, cell in enumerate(cells) if cell.strip()), default=0)


def read_csv(text: str) -> ScriptBatch:
    """One video per row: the `script` column (or the first, without a header naming one),
    the title from a `title` column. Empty rows, rows with more cells than the others and
    rows the csv module cannot read are skipped with their reason."""
    delimiter = _delimiter(text)
    rows, skipped = _read_rows(text, delimiter)
    header = [cell.strip().lower() for cell in rows[0][1]] if rows else []
    has_header = "script" in header
    if has_header:
        rows = rows[1:]
        script_at, title_at = header.index("script"), (
            header.index("title") if "title" in header else None)  # fmt: skip
        expected = _width(header)
        columns = ", ".join(name for name in header if name)
        dialect = f"{DELIMITERS[delimiter].capitalize()}-separated, with a header row ({columns})"
    else:
        script_at, title_at = 0, None
        widths = Counter(_width(cells) for _, cells in rows if _width(cells))
        expected = widths.most_common(1)[0][0] if widths else 1
        dialect = (f"{DELIMITERS[delimiter].capitalize()}-separated, no header row: the first "
                   "column is the script")  # fmt: skip
    lessons = []
    for line, cells in rows:
        source = f"Row {line}"
        if not any(cell.strip() for cell in cells):
            skipped.append(SkippedRow(source, "empty row"))
        elif _width(cells) > expected:
            where = "the header has" if has_header else "the other rows have"
            reason = f"malformed: {_width(cells)} cells where {where} {expected}"
            skipped.append(SkippedRow(source, f"{reason} (an unquoted {DELIMITERS[delimiter]}?)"))
        else:
            script = cells[script_at] if len(cells) > script_at else ""
            title = cells[title_at] if title_at is not None and len(cells) > title_at else ""
            lessons.append((source, script, title))
    batch = plan(lessons, dialect=dialect, skipped=skipped)
    batch.skipped.sort(key=lambda row: int(row.source.removeprefix("Row ")))
    return batch
