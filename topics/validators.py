"""Field rules of the topics domain, defined once and used by every door (model, forms,
admin, services, commands)."""

import re

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
