"""Several avatar video scripts at once: the block rule, defined once for the studio form and
the `generate_avatar_videos` command.

A text holds one script per block; blocks are separated by one or more blank lines. A CSV
file holds one script per row, in its `script` column (or its first column without one), and
the video's title in its `title` column when it has one (blank: the default title).
"""

import csv
import io
import re

from django.core.exceptions import ValidationError

from topics.validators import validate_plain_text, validate_title

#: At least one line holding nothing but whitespace separates two scripts.
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
SCRIPT_FILE_SUFFIXES = (".txt", ".csv")
SCRIPT_FILE_MAX_BYTES = 1024 * 1024
MAX_SCRIPTS_PER_BATCH = 100


def split_scripts(text: str) -> list[str]:
    """The scripts in `text`, one per blank-line-separated block, stripped, empties dropped."""
    normalized = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    return [block.strip() for block in _BLANK_LINE.split(normalized) if block.strip()]


def _cell(row: list[str], column: int | None) -> str:
    return row[column].strip() if column is not None and len(row) > column else ""


def _csv_lessons(text: str) -> list[tuple[str, str]]:
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    if "script" not in header:
        return [(row[0].strip(), "") for row in rows if row and row[0].strip()]
    script = header.index("script")
    title = header.index("title") if "title" in header else None
    return [(_cell(row, script), _cell(row, title)) for row in rows[1:] if _cell(row, script)]


def lessons_from_file(name: str, content: bytes) -> list[tuple[str, str]]:
    """(script, title) of each video of an uploaded .txt (blank-line blocks, no titles) or
    .csv (one per row; titles from a `title` column) file; a blank title: the default."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in SCRIPT_FILE_SUFFIXES:
        raise ValidationError(
            "Upload a .txt file (scripts separated by a blank line) or a .csv file.",
            code="script_file_type",
        )
    if len(content) > SCRIPT_FILE_MAX_BYTES:
        raise ValidationError("The scripts file is over 1 MiB.", code="script_file_size")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValidationError(
            "The scripts file is not UTF-8 text.", code="script_file_encoding"
        ) from error
    validate_plain_text(text, label="The scripts file")
    if suffix == ".csv":
        return _csv_lessons(text)
    return [(script, "") for script in split_scripts(text)]


def scripts_from_file(name: str, content: bytes) -> list[str]:
    """The scripts of an uploaded .txt (blank-line blocks) or .csv (one per row) file."""
    return [script for script, _ in lessons_from_file(name, content)]


def check_script_count(scripts: list[str]) -> list[str]:
    """At least one script and at most MAX_SCRIPTS_PER_BATCH in one request."""
    if not scripts:
        raise ValidationError("Write a script: what the avatar should say.", code="no_script")
    if len(scripts) > MAX_SCRIPTS_PER_BATCH:
        raise ValidationError(
            f"{len(scripts)} scripts at once; the limit is {MAX_SCRIPTS_PER_BATCH}.",
            code="too_many_scripts",
        )
    return scripts


def check_titles(titles: list[str]) -> list[str]:
    """The titles of a batch by the one title rule; a blank title stays blank (the video gets
    the default title from its script). The error names the video's number."""
    cleaned = []
    for number, title in enumerate(titles, start=1):
        try:
            cleaned.append(validate_title(title) if title.strip() else "")
        except ValidationError as error:
            raise ValidationError(
                f"Video {number}: {error.messages[0]}", code=error.error_list[0].code
            ) from error
    return cleaned
