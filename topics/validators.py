"""Field rules of the topics domain, defined once and used by every door (model, forms,
admin, services, commands)."""

import re
import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError

#: A BCP 47 language tag as course authors write them: a 2-3 letter language, then optional
#: script (4 letters), region (2 letters or 3 digits) and variants, separated by hyphens.
_LANGUAGE_TAG = re.compile(
    r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*$"
)
LANGUAGE_MAX_CHARS = 16
#: Text is letters, tabs and line breaks: every other control character (Unicode Cc: C0, DEL,
#: C1) and unpaired surrogates are refused. PostgreSQL cannot store NUL at all, and the others
#: would reach the provider's voice as garbage.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def validate_language_tag(value: str) -> str:
    """Return the tag if it is a BCP 47 language tag such as en, he, pt-BR or zh-Hant-TW."""
    tag = (value or "").strip()
    if len(tag) > LANGUAGE_MAX_CHARS or not _LANGUAGE_TAG.match(tag):
        raise ValidationError(
            "Use a language code (BCP 47) such as en, he or pt-BR.", code="invalid_language"
        )
    return tag


def validate_plain_text(text: str, *, label: str) -> str:
    """The text unchanged if it has no control character but tabs and line breaks; else a
    ValidationError naming the first one (the rule for typed scripts and uploaded files)."""
    found = _CONTROL_CHARACTER.search(text or "")
    if found:
        line = text.count("\n", 0, found.start()) + 1
        raise ValidationError(
            f"{label} has a control character (U+{ord(found.group()):04X}) on line {line}; "
            "only text, tabs and line breaks are allowed.",
            code="control_character",
        )
    return text


def validate_script(script: str, *, label: str = "The script") -> str:
    """The script stripped, if it is not empty, plain text (`validate_plain_text`) and within
    the provider's limit (AVATAR_SCRIPT_MAX_CHARS); a ValidationError in one sentence
    otherwise."""
    script = (script or "").strip()
    if not script:
        raise ValidationError(
            f"{label} is empty; write what the avatar should say.", code="empty_script"
        )
    validate_plain_text(script, label=label)
    limit = settings.AVATAR_SCRIPT_MAX_CHARS
    if len(script) > limit:
        raise ValidationError(
            f"{label} has {len(script)} characters; the limit is {limit}.", code="long_script"
        )
    return script


#: A lesson's title: long enough for a real title, short enough for a card and a file name.
TITLE_MAX_CHARS = 200
#: The default title: the script's first words, at most this many words and characters.
DEFAULT_TITLE_WORDS = 8
DEFAULT_TITLE_CHARS = 80
UNTITLED = "Untitled video"
_ELLIPSIS = "…"


def _is_control(char: str) -> bool:
    # Cc: C0/C1 controls (newlines and tabs too); Zl/Zp: line and paragraph separators.
    return unicodedata.category(char) in {"Cc", "Zl", "Zp"}


def validate_title(value: str) -> str:
    """The title stripped, if it is not empty, holds no control characters (a title is one
    line) and fits TITLE_MAX_CHARS; a ValidationError in one sentence otherwise."""
    title = (value or "").strip()
    if not title:
        raise ValidationError("The title is empty; give the video a title.", code="empty_title")
    if any(_is_control(char) for char in title):
        raise ValidationError(
            "The title holds a line break or another control character; keep it on one line.",
            code="control_title",
        )
    if len(title) > TITLE_MAX_CHARS:
        raise ValidationError(
            f"The title has {len(title)} characters; the limit is {TITLE_MAX_CHARS}.",
            code="long_title",
        )
    return title


def default_title(script: str) -> str:
    """The title a video gets when nobody gives one: the script's first words (at most
    DEFAULT_TITLE_WORDS words and DEFAULT_TITLE_CHARS characters, cut at a word boundary,
    an ellipsis when cut); UNTITLED for a script without words. Always a valid title."""
    words = "".join(" " if _is_control(char) else char for char in script or "").split()
    if not words:
        return UNTITLED
    title = " ".join(words[:DEFAULT_TITLE_WORDS])
    cut = len(words) > DEFAULT_TITLE_WORDS
    limit = DEFAULT_TITLE_CHARS - len(_ELLIPSIS)
    if len(title) > DEFAULT_TITLE_CHARS:
        head = title[: limit + 1]
        # At the last word boundary; a single word longer than the limit is cut inside it.
        title = head.rsplit(" ", 1)[0] if " " in head else head[:limit]
        cut = True
    if cut:
        title = title.rstrip(" ,;:.-–—") + _ELLIPSIS
    return title
