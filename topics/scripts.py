"""Several avatar video scripts at once: the block rule, defined once for the studio form and
the `generate_avatar_videos` command.

A text holds one script per block; blocks are separated by one or more blank lines. A CSV
file holds one script per row, in its `script` column (or its first column without one), and
the video's title in its `title` column when it has one (blank: the default title).
"""

import re

from django.core.exceptions import ValidationError

from topics.batches import ScriptBatch, plan, read_csv
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


def decode_scripts_file(name: str, content: bytes) -> tuple[str, str]:
    """(suffix, text) of an uploaded scripts file: a .txt or .csv of at most 1 MiB of UTF-8."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in SCRIPT_FILE_SUFFIXES:
        raise ValidationError(
            "Upload a .txt file (scripts separated by a blank line) or a .csv file.",
            code="script_file_type",
        )
    if len(content) > SCRIPT_FILE_MAX_BYTES:
        raise ValidationError("The scripts file is over 1 MiB.", code="script_file_size")
    return suffix, decode_script_text(content)


def decode_script_text(content: bytes) -> str:
    """The text of a scripts file (UTF-8, a byte order mark dropped)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValidationError(
            "The scripts file is not UTF-8 text.", code="script_file_encoding"
        ) from error
    validate_plain_text(text, label="The scripts file")  # the typed script's rule too
    return text


def lessons_from_file(name: str, content: bytes) -> list[tuple[str, str]]:
    """(script, title) of each video of an uploaded .txt (blank-line blocks, no titles) or
    .csv (one per row; titles from a `title` column) file; a blank title: the default."""
    suffix, text = decode_scripts_file(name, content)
    batch = parse_batch(file_text=text, file_suffix=suffix)
    return list(zip(batch.scripts, batch.titles, strict=True))


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


def parse_batch(*, text: str = "", file_text: str | None = None, file_suffix: str = ""
                ) -> ScriptBatch:  # fmt: skip
    """What a submission will make: the script box's blocks, or a file's (`file_suffix`
    ".csv": one per row; else blank-line blocks), never both. ValidationError when both are
    given or the file cannot be read (an unclosed quote)."""
    if text.strip() and file_text is not None:
        raise ValidationError(
            "Use the script box or a file, not both: clear the box to upload a file.",
            code="script_and_file",
        )
    if file_text is not None:  # as a browser sends it back from the preview: one newline rule
        file_text = file_text.replace("\r\n", "\n").replace("\r", "\n")
    if file_text is not None and file_suffix == ".csv":
        return read_csv(file_text)
    blocks = split_scripts(text if file_text is None else file_text)
    return plan([(f"Block {number}", block, "") for number, block in enumerate(blocks, 1)])


def check_batch(batch: ScriptBatch) -> ScriptBatch:
    """A batch that makes at least one video and at most MAX_SCRIPTS_PER_BATCH; when every
    block or row was skipped, the error says why."""
    if not batch.videos and batch.skipped:
        reasons = "; ".join(f"{row.source}: {row.reason}" for row in batch.skipped[:3])
        raise ValidationError(f"Nothing to generate ({reasons}).", code="nothing_to_generate")
    check_script_count(batch.scripts)
    return batch
